"""The result of one shard (or of several merged): named arrays plus the positions they cover, as npz bytes."""
from __future__ import annotations

import io
import json

import attrs
import numpy as np

_META = "__partial__"


@attrs.define
class Partial:
    """Arrays computed over positions ``start:stop`` of a pass's image index.

    Attributes
    ----------
    kind : str
        The pass kind that made it.
    digest : str
        :meth:`PassSpec.digest` of the pass; partials of different passes never merge.
    start, stop : int
        Positions covered (into the pass's index, not dataset indices).
    arrays : dict of str to ndarray
        What the pass keeps (see each pass).
    skipped : ndarray of int64
        Dataset indices whose image could not be read.
    """

    kind: str
    digest: str
    start: int
    stop: int
    arrays: dict = attrs.field(factory=dict)
    skipped: np.ndarray = attrs.field(factory=lambda: np.zeros(0, np.int64))

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays (what a running pass keeps in memory)."""
        return sum(a.nbytes for a in self.arrays.values()) + self.skipped.nbytes

    def to_bytes(self, compress: bool = False) -> bytes:
        """npz bytes; :meth:`from_bytes` reads them back (no pickle)."""
        meta = {"kind": self.kind, "digest": self.digest, "start": self.start, "stop": self.stop}
        buffer = io.BytesIO()
        save = np.savez_compressed if compress else np.savez
        save(buffer, **{_META: np.frombuffer(json.dumps(meta).encode(), np.uint8), "__skipped__": self.skipped},
             **{f"a_{name}": value for name, value in self.arrays.items()})
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Partial":
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            if _META not in archive.files:
                raise ValueError("these bytes are not a shard partial (no metadata entry)")
            meta = json.loads(bytes(archive[_META]).decode())
            arrays = {name[2:]: archive[name] for name in archive.files if name.startswith("a_")}
            return cls(**meta, arrays=arrays, skipped=archive["__skipped__"])
