"""Build GGUF variants of the default model with the gguf package (trusted input only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf

from models.defaults import default_gguf_path


def copy_with_metadata(dst: Path, extra: dict[str, Any] | None = None) -> Path:
    """Copy the default model's GGUF, adding metadata (e.g. a pooling type), tensors untouched."""
    reader = gguf.GGUFReader(default_gguf_path())
    writer = gguf.GGUFWriter(dst, "llama")
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            sub = field.types[-1]
            if sub == gguf.GGUFValueType.STRING:
                value: Any = [bytes(field.parts[i]) for i in field.data]
            else:
                value = [field.parts[i].tolist()[0] for i in field.data]
            writer.add_key_value(field.name, value, vtype, sub_type=sub)
        elif vtype == gguf.GGUFValueType.STRING:
            writer.add_key_value(field.name, bytes(field.parts[field.data[0]]), vtype)
        else:
            writer.add_key_value(field.name, field.parts[field.data[0]].tolist()[0], vtype)
    for key, value in (extra or {}).items():
        if key == "pooling_type":
            writer.add_pooling_type(gguf.PoolingType(value))
    for tensor in reader.tensors:
        writer.add_tensor(
            tensor.name, tensor.data, raw_shape=tensor.data.shape, raw_dtype=tensor.tensor_type
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst
