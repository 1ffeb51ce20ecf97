/* replay — runs a libFuzzer target's inputs once each without libFuzzer, so that the seed corpora
 * and the regression inputs (fuzz/corpus/<target>, fuzz/regressions/<target>) run in `make test`
 * under the ASan/UBSan build with gcc (no clang needed). Linked with one fuzz_<target>.c:
 *   replay_<target> FILE...
 * Prints "replay: N input(s) ok" and exits 0, or dies in the target (a failed check aborts, a
 * sanitizer report exits non-zero) naming the input first. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

#define INPUT_MAX (4u << 20)   /* the fuzzers' own -max_len is far below */

int main(int argc, char **argv)
{
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    uint8_t *buf = malloc(INPUT_MAX);
    if (!buf) { fputs("replay: out of memory\n", stderr); return 2; }
    int n = 0;
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) { fprintf(stderr, "replay: %s: cannot open\n", argv[i]); free(buf); return 2; }
        size_t len = fread(buf, 1, INPUT_MAX, f);
        int big = !feof(f);
        fclose(f);
        if (big) { fprintf(stderr, "replay: %s: larger than %u bytes\n", argv[i], INPUT_MAX); free(buf); return 2; }
        fprintf(stderr, "replay: %s\n", argv[i]);
        /* a copy of exactly len bytes, so that ASan sees reads past the end */
        uint8_t *in = malloc(len ? len : 1);
        if (!in) { free(buf); return 2; }
        for (size_t k = 0; k < len; k++) in[k] = buf[k];
        LLVMFuzzerTestOneInput(in, len);
        free(in);
        n++;
    }
    free(buf);
    printf("replay: %d input(s) ok\n", n);
    return 0;
}
