"""Events as groupsvc carries them: JSON text, with one documented extension
for the values of Django Channels' messages that JSON lacks
(``protos/groupsvc/v1/layer.proto``, WireEvent):

    a byte string                       {"$bytes": "<standard base64>"}
    a float NaN, inf or -inf            {"$float": "nan"} / {"$float": "inf"} / {"$float": "-inf"}
    a dict whose only key starts "$"    {"$dict": {...}}, so it is never taken for one of these

Everything else the Channels spec allows is plain JSON, and comes back as it
was sent: str, int (any size), float, bool, None, dict (str keys), list;
tuples come back as lists, as with channels_redis. Anything else is a
TypeError that names the key.
"""

import base64
import json
import math

_EXTENSIONS = ("$bytes", "$float", "$dict")


def encode(message):
    """The message as wire JSON (bytes)."""
    return json.dumps(_out(message, "message"), separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def decode(data):
    """A message from wire JSON (bytes or str)."""
    value = json.loads(data)
    # Most events carry no extension: one scan of the text spares the walk.
    if (b'"$' if isinstance(data, (bytes, bytearray)) else '"$') not in data:
        return value
    return _in(value)


def _out(value, where):
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return [_out(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for key, v in value.items():
            if not isinstance(key, str):
                raise TypeError(f"channels_groupsvc cannot send {where}: its key {key!r} is a "
                                f"{type(key).__name__}; the Channels spec allows str keys only")
            out[key] = _out(v, f"{where}[{key!r}]")
        if len(out) == 1 and next(iter(out)).startswith("$"):
            return {"$dict": out}
        return out
    raise TypeError(f"channels_groupsvc cannot send {where}: a {type(value).__name__} is not a "
                    "type the Channels spec allows (str, bytes, int, float, bool, None, list, "
                    "tuple, dict)")


def _in(value):
    if isinstance(value, list):
        return [_in(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (key, inner), = value.items()
        if key == "$bytes" and isinstance(inner, str):
            return base64.b64decode(inner)
        if key == "$float" and inner in ("nan", "inf", "-inf"):
            return float(inner)
        if key == "$dict" and isinstance(inner, dict):
            return {k: _in(v) for k, v in inner.items()}
    return {k: _in(v) for k, v in value.items()}
