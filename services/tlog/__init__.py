"""The ledger's transparency log: an RFC 6962 Merkle tree over every ledger entry in append
order, signed checkpoints (C2SP signed-note checkpoints) kept outside the ledger database,
inclusion and consistency proofs, and the offline verifier an auditor runs without us.

``auditor`` is the one module an auditor needs (Python and ``cryptography``, nothing of ours);
the rest builds on it: ``merkle`` (proofs from stored leaves), ``note`` (signing),
``keys`` (the checkpoint key file), ``checkpoints`` (cadence, sinks, witness, publishing).
"""
