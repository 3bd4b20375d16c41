"""Build an F16 GGUF from the default (Q4_1) model: dequantised weights, same metadata.

The source is the trusted packaged model, so gguf-py's reader may parse it; the output is a
model llama.cpp can quantize again (``/api/create`` with ``quantize``).
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

_SKIP = ("GGUF.", "general.architecture", "general.file_type")


def _value(field: gguf.ReaderField) -> object:
    return field.contents()


def build_f16_gguf(src: Path, dst: Path) -> Path:
    """Write ``dst``: every matrix of ``src`` as F16 (vectors as F32), metadata copied."""
    reader = gguf.GGUFReader(src)
    arch = reader.fields["general.architecture"].contents()
    assert isinstance(arch, str)
    writer = gguf.GGUFWriter(dst, arch)
    for name, field in reader.fields.items():
        if name.startswith(_SKIP):
            continue
        vtype = field.types[0]
        sub = field.types[1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, _value(field), vtype, sub_type=sub)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    for tensor in reader.tensors:
        weights = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        if len(tensor.shape) >= 2:
            writer.add_tensor(tensor.name, weights.astype(np.float16))
        else:
            writer.add_tensor(tensor.name, weights.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst
