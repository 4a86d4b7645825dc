/* Fuzz target: a Hugging Face model folder. Input: config.json NUL generation_config.json NUL
 * model.safetensors (the binary part last, since it holds NULs; a missing or empty part is an
 * absent file). The config parsers run on the
 * text directly; then the folder is written out and loaded through fr_model_load (config,
 * safetensors header and every tensor against the config), and a loaded model runs a forward.
 * Seeds: tiny valid models (tests/fuzz/make_corpus.py) and the fixture models' headers. */
#include "fuzz_util.h"
#include "model/config.h"
#include "model/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fr_fuzz_part parts[3];
    const size_t n = fr_fuzz_split(data, size, parts, 3);
    char *config = fr_fuzz_strdup(parts[0].p, parts[0].n);
    const bool has_gen = n > 1 && parts[1].n;
    char *gen = has_gen ? fr_fuzz_strdup(parts[1].p, parts[1].n) : NULL;
    fr_config cfg;
    fr_error err = {0};
    if (fr_config_parse_hf(config, "config.json", &cfg, &err) == FR_OK) {
        if (gen) (void)fr_config_parse_generation(gen, "generation_config.json", &cfg, &err);
        (void)fr_config_validate(&cfg, "config.json", &err);
    }
    free(config);
    free(gen);

    char path[512], dir[512];
    fr_fuzz_write("config.json", parts[0].p, parts[0].n, path, sizeof path);
    if (has_gen)
        fr_fuzz_write("generation_config.json", parts[1].p, parts[1].n, path, sizeof path);
    else
        fr_fuzz_remove("generation_config.json");
    if (n > 2 && parts[2].n)
        fr_fuzz_write("model.safetensors", parts[2].p, parts[2].n, path, sizeof path);
    else
        fr_fuzz_remove("model.safetensors");
    snprintf(dir, sizeof dir, "%s", fr_fuzz_dir());

    /* the weights alone, as `ferrum quantize` reads them */
    fr_weight_source *src = NULL;
    if (fr_safetensors_open(dir, &src, &err) == FR_OK) {
        for (int i = 0; i < src->n_weights; i++) {
            const fr_weight *w = &src->weights[i];
            FR_FUZZ_CHECK(w->region >= 0 && w->region < src->n_regions, "weight %s region %d",
                          w->name, w->region);
            const fr_weight_region *r = &src->regions[w->region];
            FR_FUZZ_CHECK(w->offset <= r->size && w->nbytes <= r->size - w->offset,
                          "weight %s [%zu, +%zu) outside %zu bytes", w->name, w->offset, w->nbytes,
                          r->size);
            FR_FUZZ_CHECK(fr_weights_find(src, w->name) == w, "weight %s not found again", w->name);
            if (w->nbytes) {
                volatile uint8_t last = ((const uint8_t *)w->data)[w->nbytes - 1];
                (void)last;
            }
        }
        fr_weights_free(src);
    }
    fr_fuzz_load_and_run(dir);
    return 0;
}
