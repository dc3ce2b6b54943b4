"""schemathesis hooks of scripts/conformance.sh."""

import ast
import functools
import os
import threading
import uuid

import schemathesis

# The machine's CPython 3.11 keeps the AST constructor's recursion counter
# per interpreter, not per call (python/cpython#106905): two threads in
# ast.parse at once can fail with "SystemError: AST constructor recursion
# depth mismatch". hypothesis parses source with ast.parse to describe its
# strategies, and the run has two workers, so parses are serialised.
_AST_LOCK = threading.RLock()
_ast_parse = ast.parse


@functools.wraps(_ast_parse)
def _serialised_parse(*args, **kwargs):
    with _AST_LOCK:
        return _ast_parse(*args, **kwargs)


ast.parse = _serialised_parse

# schemathesis reuses IDs it has seen in answers (its resource pool, and the
# stateful links): it finds the run's own token in GET /rest/self/tokens and
# the admin's memberships in the membership lists, and DELETEs them like any
# other. Revoking the token or removing the admin from the group would turn
# the rest of the run into 401 and 404 answers that test nothing, so such a
# request is sent for a random ID instead (a 404, checked like any answer).
# The script names the protected IDs in CONFORMANCE_PROTECTED_IDS.
PROTECTED = {i for i in os.environ.get("CONFORMANCE_PROTECTED_IDS", "").split(",") if i}


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.method.upper() != "DELETE" or not case.path_parameters:
        return
    for name, value in case.path_parameters.items():
        if str(value) in PROTECTED:
            case.path_parameters[name] = str(uuid.uuid4())


@schemathesis.hook
def filter_failure(context, failure, case, response):
    # DELETE /rest/self/tokens/{token_id} revokes the token, and the token
    # stays readable with `revoked_at` set, as the document says: that is
    # not a deleted resource still being served (use_after_free).
    return not (failure.code == "ST301" and case.path.startswith("/rest/self/tokens/"))
