"""Tokens for the C++ edge, minted for Django's users: a user logged in to
Django chats on the edge's pages under their Django name, and the edge
checks the token without asking Django (docs/security.md).

    from channels_groupsvc.tokens import edge_token

    def room(request, room_name):
        token = edge_token(request.user, secret_file="/etc/chat/jwt-secret", rooms=[room_name])
        return redirect(f"https://chat.example.com/chat/{room_name}/?token={token}")

HS256 (PyJWT, Debian's python3-jwt) under the secret the edges read with
--jwt_secret_file: the same file (a trailing newline is not part of the
secret, as the edge reads it) and at least 32 bytes. Claims: ``sub`` (the
user's id), ``name``, ``iat``, ``nbf``, ``exp``, and ``rooms`` when given
(room names or ``*``-patterns the user may join; absent: every room);
``iss`` and ``aud`` when the edges check them (--jwt_issuer, --jwt_audience).
"""

import time

MIN_SECRET_BYTES = 32


def identity(user):
    """(id, name) of a Django user (its ``pk``; its full name, else its username) or of a dict
    with "id" and "name": how the edges and presence show it."""
    if isinstance(user, dict):
        return str(user.get("id", "")), str(user.get("name") or user.get("id", ""))
    return str(user.pk), (user.get_full_name() or "").strip() or user.get_username()


def read_secret(path):
    """The secret in ``path`` as the edge reads it."""
    with open(path, "rb") as f:
        secret = f.read().rstrip(b"\r\n")
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"channels_groupsvc.tokens: {path} holds {len(secret)} bytes; an HS256 "
                         f"secret needs at least {MIN_SECRET_BYTES} (e.g. openssl rand -hex 32)")
    return secret


def edge_token(user, *, secret=None, secret_file=None, rooms=None, lifetime=3600, name=None,
               issuer=None, audience=None):
    """A token the edge accepts for ``user``: a Django user (its ``pk`` and, unless ``name`` is
    given, its full name or else its username) or a dict with "id" and "name". ``lifetime`` in
    seconds. Give the secret's bytes or the file the edges read."""
    if (secret is None) == (secret_file is None):
        raise ValueError("channels_groupsvc.tokens: give exactly one of secret and secret_file")
    import jwt  # PyJWT; only minting needs it.

    key = read_secret(secret_file) if secret_file is not None else _checked(secret)
    if not isinstance(user, dict) and not getattr(user, "is_authenticated", False):
        raise ValueError("channels_groupsvc.tokens: an anonymous user gets no token "
                         "(the edge lets anonymous users in without one)")
    user_id, shown = identity(user)
    if name is not None:
        shown = name
    if not user_id:
        raise ValueError("channels_groupsvc.tokens: the user has no id")
    now = int(time.time())
    claims = {"sub": user_id, "name": shown, "iat": now, "nbf": now, "exp": now + int(lifetime)}
    if rooms is not None:
        claims["rooms"] = [str(r) for r in rooms]
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, key, algorithm="HS256")


def _checked(secret):
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"channels_groupsvc.tokens: the secret holds {len(key)} bytes; an HS256 "
                         f"secret needs at least {MIN_SECRET_BYTES}")
    return key
