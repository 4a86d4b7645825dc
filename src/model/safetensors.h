/* safetensors reader: 8-byte little-endian header length, a JSON header
 * {"name": {"dtype": "F16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
 * then the data; offsets are relative to the end of the header. Files are mmapped, never read
 * into memory, and every dtype, shape and offset is checked against the file size. */
#ifndef FR_MODEL_SAFETENSORS_H
#define FR_MODEL_SAFETENSORS_H

#include "model/weights.h"

/* path: a folder (model.safetensors.index.json is preferred, then model.safetensors) or a single
 * .safetensors file. On success *out holds every tensor of every shard. */
fr_status fr_safetensors_open(const char *path, fr_weight_source **out, fr_error *err);

/* Adds the tensors of one file to an existing source. */
fr_status fr_safetensors_add_file(fr_weight_source *s, const char *file, fr_error *err);

#endif
