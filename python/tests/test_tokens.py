"""channels_groupsvc.tokens: what it mints, and that the real edge takes it."""

import jwt
import pytest

from channels_groupsvc.tokens import edge_token
from conftest import Edge, WsClient

SECRET = "tokens-test-secret-0123456789abcdef0123"


class DjangoUser:
    """What the helper reads of a django.contrib.auth user."""

    def __init__(self, pk, username, full_name="", authenticated=True):
        self.pk, self._username, self._full = pk, username, full_name
        self.is_authenticated = authenticated

    def get_username(self):
        return self._username

    def get_full_name(self):
        return self._full


def test_claims_name_the_django_user_and_what_it_may_join(tmp_path):
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")  # A trailing newline is not part of the secret.
    token = edge_token(DjangoUser(7, "ann", "Ann Lee"), secret_file=path, rooms=["lobby", "team-*"],
                       lifetime=60)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["sub"] == "7" and claims["name"] == "Ann Lee"
    assert claims["rooms"] == ["lobby", "team-*"]
    assert claims["exp"] - claims["iat"] == 60
    assert jwt.decode(edge_token(DjangoUser(8, "bo"), secret=SECRET), SECRET,
                      algorithms=["HS256"])["name"] == "bo"
    with pytest.raises(ValueError, match="anonymous"):
        edge_token(DjangoUser(None, "", authenticated=False), secret=SECRET)
    with pytest.raises(ValueError, match="at least 32"):
        edge_token({"id": "x"}, secret="short")


async def test_the_edge_admits_its_tokens_and_their_rooms_only(groupsvc, tmp_path):
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")
    edge = Edge(groupsvc.target, flags=[f"--jwt_secret_file={path}", "--auth=required"])
    try:
        token = edge_token({"id": "ann", "name": "Ann"}, secret_file=path, rooms=["lobby"])
        (await WsClient.connect(edge.port, f"/ws/chat/lobby/?token={token}")).close()
        with pytest.raises(AssertionError, match="403"):
            await WsClient.connect(edge.port, f"/ws/chat/kitchen/?token={token}")
        forged = edge_token({"id": "ann"}, secret="another-secret-0123456789abcdef0123456")
        with pytest.raises(AssertionError, match="401"):
            await WsClient.connect(edge.port, f"/ws/chat/lobby/?token={forged}")
    finally:
        edge.stop()
