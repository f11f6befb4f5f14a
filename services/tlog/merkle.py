"""RFC 6962 / RFC 9162 Merkle trees: roots and proofs from stored leaf hashes.

Our own small module rather than ``pymerkle``: the auditor's side (``services.tlog.auditor``)
must verify with nothing but Python and ``cryptography``, so hashing and verification live
there once and are tested against the RFC's published vectors; what the log needs beyond that
is proof *generation* from leaves kept in the ledger database (SQLite or PostgreSQL, inside
the append transaction), which a library with its own storage backends does not fit.

``Tree`` holds every level of one tree size (a node covers ``[j·2^L, min((j+1)·2^L, n))``;
an unpaired last node is carried up unchanged, which yields exactly RFC 6962's split at the
largest power of two), so each subtree hash the RFC's recursion asks for is one lookup.
``Frontier`` is the compact form the append path keeps: the roots of the perfect subtrees
that make up the tree (one per set bit of the size), enough to extend it and to compute its
root in O(log n).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from services.tlog.auditor import EMPTY_ROOT, node_hash


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class Tree:
    """One tree size over its leaf hashes, every level kept."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.size = len(leaves)
        self.levels: list[list[bytes]] = [list(leaves)]
        level = self.levels[0]
        while len(level) > 1:
            upper = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                upper.append(level[-1])
            self.levels.append(upper)
            level = upper

    def extend(self, leaves: Sequence[bytes]) -> None:
        """Append leaves, rehashing only the right edge: each level from the first node whose
        children changed (an unpaired node carried up gains its sibling this way)."""
        first = self.size
        self.levels[0].extend(leaves)
        self.size = len(self.levels[0])
        level = 0
        while len(self.levels[level]) > 1:
            below = self.levels[level]
            if level + 1 == len(self.levels):
                self.levels.append([])
            upper = self.levels[level + 1]
            first >>= 1
            del upper[first:]
            upper.extend(
                node_hash(below[i], below[i + 1]) for i in range(2 * first, len(below) - 1, 2)
            )
            if len(below) % 2:
                upper.append(below[-1])
            level += 1
        del self.levels[level + 1 :]

    @property
    def root(self) -> bytes:
        return self.levels[-1][0] if self.size else EMPTY_ROOT

    def _hash(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for a range the RFC recursion produces (aligned on its level)."""
        level = (end - start - 1).bit_length()
        return self.levels[level][start >> level]

    def inclusion_proof(self, index: int) -> list[bytes]:
        """RFC 9162 2.1.3.1 PATH(index, D[0:n])."""
        if not 0 <= index < self.size:
            raise IndexError(f"leaf {index} is not in a tree of size {self.size}")
        proof: list[bytes] = []
        start, end = 0, self.size
        while end - start > 1:
            k = _split(end - start)
            if index < start + k:
                proof.append(self._hash(start + k, end))
                end = start + k
            else:
                proof.append(self._hash(start, start + k))
                start += k
        proof.reverse()
        return proof

    def consistency_proof(self, old_size: int) -> list[bytes]:
        """RFC 9162 2.1.4.1 PROOF(old_size, D[0:n])."""
        if not 0 <= old_size <= self.size:
            raise IndexError(f"size {old_size} is not within a tree of size {self.size}")
        if old_size in (0, self.size):
            return []
        return self._subproof(old_size, 0, self.size, True)

    def _subproof(self, m: int, start: int, end: int, whole: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if whole else [self._hash(start, end)]
        k = _split(n)
        if m <= k:
            return [*self._subproof(m, start, start + k, whole), self._hash(start + k, end)]
        return [*self._subproof(m - k, start + k, end, False), self._hash(start, start + k)]


class Frontier:
    """The perfect subtrees of a tree, largest first: extend and take the root cheaply."""

    def __init__(self, size: int = 0, nodes: Iterable[bytes] = ()) -> None:
        self.size = size
        self.nodes = list(nodes)
        if len(self.nodes) != bin(size).count("1"):
            raise ValueError(f"a frontier of size {size} has {bin(size).count('1')} nodes")

    def append(self, leaf: bytes) -> None:
        node, size = leaf, self.size
        # each trailing 1 bit of the old size is a perfect subtree the new leaf completes
        while size & 1:
            node = node_hash(self.nodes.pop(), node)
            size >>= 1
        self.nodes.append(node)
        self.size += 1

    @property
    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        root = self.nodes[-1]
        for node in reversed(self.nodes[:-1]):
            root = node_hash(node, root)
        return root


def root_of(leaves: Sequence[bytes]) -> bytes:
    return Tree(leaves).root
