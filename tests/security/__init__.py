"""The security suite: each attack of the trust-boundary review, performed through the real
entry point, refused with nothing recorded. Where an attack's door has its own test package,
the test lives there (beside the code it guards); this index names each one.

1. Commands sent straight to Temporal (the ``temporal`` CLI, a Temporal client): forged
   decision Signals and Updates, forged ``change_finished`` and ``seed_evidence``, an unsigned
   start, rotated and lifted keys — ``test_forged_commands.py``.
2. Idempotency keys bound to (caller, command, body), a replayed key on every command route,
   never a 500 — ``tests/api/test_idempotency.py``, ``tests/commands/test_idempotency.py``.
3. Approvals name the evidence their approver saw (428 / 412 / 409, ETag on every state) —
   ``tests/api/test_evidence_seen.py``; the CLI and Slack send what they showed —
   ``tests/cli/test_cli_units.py``, ``tests/slack/test_desk.py``.
4. Id squatting and aliasing keys — ``test_run_ids.py``.
5. OIDC ``email_verified`` — ``tests/api/test_oidc.py::test_an_unverified_email_maps_to_nobody``.
6. Hooks as an SSRF oracle (allow-list at the door and after name resolution; the ledger keeps
   the failure class only) — ``tests/api/test_security.py``, ``tests/worker/test_hooks.py``,
   ``tests/test_hook_targets.py``.
7. Need-to-know reads (404, absent from listings, flow metrics and the inbox) —
   ``tests/api/test_need_to_know.py``.
8. Slack mrkdwn injection in every field — ``tests/slack/test_escaping.py``.
9. Compose and production start-up (loopback, no demo directory, no dev tokens) —
   ``tests/deploy/test_compose.py``, ``tests/api/test_security.py``.

Beside them: every person × every command gets exactly what the policy grants
(``test_role_matrix.py``), a property-based run over the OpenAPI document with valid tokens
(``test_fuzz_api.py``), the payload codec (``test_codec.py``), Temporal over mTLS
(``test_tls.py``) and the ledger's proofs outside the database (``test_offline_audit.py``,
``test_transparency_e2e.py``).
"""
