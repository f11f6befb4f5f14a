"""The transparency log's hashing, proofs and signed notes against published test vectors.

RFC 6962 reference leaves and tree heads (the vectors Certificate Transparency and
transparency-dev publish), C2SP signed-note examples (the spec's and Go's sumdb/note docs),
then properties over every tree size up to 40 and mangled proofs that must be refused.
"""

from __future__ import annotations

import pytest

from services.settings import ConfigError
from services.tlog import keys
from services.tlog.auditor import (
    ALG_COSIGNATURE_V1,
    EMPTY_ROOT,
    Checkpoint,
    NoteError,
    Verifier,
    leaf_hash,
    node_hash,
    open_note,
    parse_note,
    verify_consistency,
    verify_inclusion,
    witness_cosignatures,
)
from services.tlog.merkle import Frontier, Tree
from services.tlog.note import NoteSigner, add_signatures, new_seed

LEAF_DATA = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION = {
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
}
CONSISTENCY = {
    (2, 8): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (6, 8): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 5): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
}
LEAVES = [leaf_hash(d) for d in LEAF_DATA]


def root(size: int) -> bytes:
    return bytes.fromhex(ROOTS[size])


# --------------------------------------------------------------------------- RFC 6962 vectors


def test_tree_heads_match_rfc6962_for_every_size() -> None:
    assert EMPTY_ROOT == root(0)
    assert Tree([]).root == root(0)
    frontier = Frontier()
    for size in range(1, len(LEAVES) + 1):
        assert Tree(LEAVES[:size]).root == root(size), size
        frontier.append(LEAVES[size - 1])
        assert frontier.root == root(size), size
    # node hashing is domain-separated from leaf hashing (0x01 vs 0x00)
    assert node_hash(LEAVES[0], LEAVES[1]) == root(2)


@pytest.mark.parametrize(("index", "size"), sorted(INCLUSION))
def test_inclusion_proofs_match_the_published_ones(index: int, size: int) -> None:
    proof = Tree(LEAVES[:size]).inclusion_proof(index)
    assert [p.hex() for p in proof] == INCLUSION[(index, size)]
    assert verify_inclusion(LEAVES[index], index, size, proof, root(size))


@pytest.mark.parametrize(("first", "second"), sorted(CONSISTENCY))
def test_consistency_proofs_match_the_published_ones(first: int, second: int) -> None:
    proof = Tree(LEAVES[:second]).consistency_proof(first)
    assert [p.hex() for p in proof] == CONSISTENCY[(first, second)]
    assert verify_consistency(first, second, root(first), root(second), proof)


# --------------------------------------------------------------------------- properties

MANY = [leaf_hash(bytes([i, (i * 7) % 256])) for i in range(40)]
TREES = [Tree(MANY[:n]) for n in range(len(MANY) + 1)]


def test_every_inclusion_proof_verifies_and_nothing_else_does() -> None:
    for size in range(1, len(MANY) + 1):
        tree = TREES[size]
        for index in range(size):
            proof = tree.inclusion_proof(index)
            assert verify_inclusion(MANY[index], index, size, proof, tree.root)
            assert not verify_inclusion(MANY[index], index, size, proof, TREES[size - 1].root)
            if size > 1:
                other = (index + 1) % size
                assert not verify_inclusion(MANY[other], index, size, proof, tree.root)
                assert not verify_inclusion(MANY[index], other, size, proof, tree.root)
            if proof:
                flipped = [*proof[:-1], bytes([proof[-1][0] ^ 1]) + proof[-1][1:]]
                assert not verify_inclusion(MANY[index], index, size, flipped, tree.root)
                assert not verify_inclusion(MANY[index], index, size, proof[:-1], tree.root)
            assert not verify_inclusion(MANY[index], index, size, [*proof, MANY[0]], tree.root)


def test_every_consistency_proof_verifies_and_a_rewritten_history_does_not() -> None:
    for second in range(len(MANY) + 1):
        for first in range(second + 1):
            proof = TREES[second].consistency_proof(first)
            assert verify_consistency(
                first, second, TREES[first].root, TREES[second].root, proof
            ), (first, second)
            if 0 < first < second:
                # a different old tree of the same size (one leaf rewritten) is refused
                forged = Tree([leaf_hash(b"forged"), *MANY[1:first]]).root
                assert not verify_consistency(first, second, forged, TREES[second].root, proof)
                assert not verify_consistency(first, second, TREES[first].root, forged, proof)
                assert not verify_consistency(
                    first, second, TREES[first].root, TREES[second].root, proof[:-1]
                )
    assert not verify_consistency(5, 4, TREES[5].root, TREES[4].root, [])
    assert not verify_consistency(4, 4, TREES[4].root, TREES[5].root, [])


def test_frontier_extends_like_the_tree() -> None:
    frontier = Frontier()
    for size, leaf in enumerate(MANY, start=1):
        frontier.append(leaf)
        assert frontier.root == TREES[size].root
        # the stored form (size and nodes) rebuilds the same frontier
        assert Frontier(size, frontier.nodes).root == TREES[size].root
    with pytest.raises(ValueError, match="nodes"):
        Frontier(3, [MANY[0]])


def test_a_tree_extended_in_steps_equals_the_tree_built_at_once() -> None:
    tree = Tree([])
    for size, step in enumerate([1, 0, 3, 1, 7, 2, 9, 1, 16], start=1):
        tree.extend(MANY[tree.size : tree.size + step])
        built = TREES[tree.size]
        assert (tree.root, tree.levels) == (built.root, built.levels), size


def test_proofs_outside_the_tree_are_refused() -> None:
    with pytest.raises(IndexError):
        TREES[5].inclusion_proof(5)
    with pytest.raises(IndexError):
        TREES[5].consistency_proof(6)


# --------------------------------------------------------------------------- signed notes

# C2SP signed-note specification's example, and Go's golang.org/x/mod/sumdb/note example
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n— example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_NOTE = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n\n— PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


@pytest.mark.parametrize(("vkey", "note"), [(SPEC_VKEY, SPEC_NOTE), (GO_VKEY, GO_NOTE)])
def test_published_signed_notes_verify(vkey: str, note: str) -> None:
    verifier = Verifier.parse(vkey)
    assert verifier.vkey == vkey  # key id and encoding round-trip
    opened, signers = open_note(note, [verifier])
    assert signers == [verifier]
    assert opened.text == note.split("\n\n")[0] + "\n"
    # one changed byte of the text, or an unknown key only: refused
    with pytest.raises(NoteError):
        open_note(note.replace("is", "was", 1), [verifier])
    with pytest.raises(NoteError, match="not signed by any trusted key"):
        open_note(note, [Verifier.parse(SPEC_VKEY if vkey == GO_VKEY else GO_VKEY)])


def test_vkeys_with_a_wrong_key_id_are_refused() -> None:
    with pytest.raises(NoteError, match="key id"):
        Verifier.parse(SPEC_VKEY.replace("530d903a", "530d903b"))
    with pytest.raises(NoteError):
        Verifier.parse("not-a-vkey")


def test_checkpoint_round_trips_and_key_rotation_keeps_old_checkpoints_valid() -> None:
    old = NoteSigner("ledger.example/rg", new_seed())
    new = NoteSigner("ledger.example/rg", new_seed())
    assert old.key_id != new.key_id  # the note names which key signed it
    checkpoint = Checkpoint("ledger.example/rg", 8, root(8), 3, root(3))
    assert Checkpoint.parse(checkpoint.body()) == checkpoint
    assert checkpoint.body().splitlines()[:3] == [
        "ledger.example/rg",
        "8",
        "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
    ]
    signed_before = old.sign(checkpoint.body())
    signed_after = new.sign(checkpoint.body())
    both = [old.verifier, new.verifier]
    assert open_note(signed_before, both)[1] == [old.verifier]
    assert open_note(signed_after, both)[1] == [new.verifier]
    with pytest.raises(NoteError):
        open_note(signed_before, [new.verifier])
    line = parse_note(signed_after).signatures[0]
    assert (line.name, line.key_id) == ("ledger.example/rg", new.key_id)


def test_witness_cosignature_is_tlog_cosignature_v1() -> None:
    log = NoteSigner("ledger.example/rg", new_seed())
    witness = NoteSigner("witness.example/w1", new_seed(), alg=ALG_COSIGNATURE_V1)
    body = Checkpoint("ledger.example/rg", 8, root(8)).body()
    cosigned = add_signatures(log.sign(body), witness.cosign(body, 1_700_000_000))
    note = parse_note(cosigned)
    assert witness_cosignatures(note, [witness.verifier]) == [("witness.example/w1", 1_700_000_000)]
    # the log's signature still verifies with the witness line beside it
    assert open_note(cosigned, [log.verifier])[1] == [log.verifier]
    # a cosignature over another body is not one
    other = add_signatures(log.sign(body), witness.cosign(body.replace("8\n", "9\n"), 1))
    assert witness_cosignatures(parse_note(other), [witness.verifier]) == []


def test_key_file_rotation_publishes_old_and_new_keys() -> None:
    document = keys.generate("ledger.example/rg")
    first = keys.parse(document, "test")
    assert first.signer is not None
    before = first.signer.sign(Checkpoint("ledger.example/rg", 1, root(1)).body())

    rotated = keys.parse(keys.rotate(document), "test")
    assert rotated.signer is not None
    assert rotated.signer.key_id != first.signer.key_id
    published = rotated.document()["keys"]
    assert [k["active"] for k in published] == [True, False]
    assert published[1]["vkey"] == first.signer.verifier.vkey
    # a checkpoint signed before the rotation still verifies with the published keys
    assert open_note(before, rotated.verifiers)[1] == [first.signer.verifier]
    # a signing key whose public key is not published is refused
    stray = {**document, "signing": keys.generate("ledger.example/rg")["signing"]}
    with pytest.raises(ConfigError, match="not listed"):
        keys.parse(stray, "test")
