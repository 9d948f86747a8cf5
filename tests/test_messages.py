"""Problem messages follow Accept-Language: English by default, Chinese for zh-CN.

The Chinese wording is checked against the catalogue's table by hand-written expectations,
and every answer is checked never to carry the submitted values.
"""

from __future__ import annotations

import pytest

from api import messages
from tests.points import interior_point
from tests.test_workflow import account, act, client, clock, post, report

__all__ = ["account", "client", "clock"]  # fixtures

ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        (None, "en"),
        ("", "en"),
        ("zh-CN", "zh-CN"),
        ("zh", "zh-CN"),
        ("zh-TW;q=0.8, en;q=0.9", "en"),
        ("en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        ("fr, zh-CN;q=0.5", "zh-CN"),
        ("de", "en"),
        ("zh;q=abc", "en"),
    ],
)
def test_negotiation(header: str | None, lang: str) -> None:
    assert messages.negotiate(header) == lang


def test_auth_and_role_problems_in_both_languages(client, account) -> None:
    resp = client.get("/api/v1/queues/dispatcher")
    assert resp.status_code == 401
    assert resp.headers["content-language"] == "en"
    assert "Sign in" in resp.json()["detail"]
    resp = client.get("/api/v1/queues/dispatcher", headers=ZH)
    assert resp.status_code == 401 and resp.headers["content-language"] == "zh-CN"
    assert resp.json()["title"] == "未登录或登录已失效"
    assert resp.json()["type"].endswith("/unauthorized")

    resp = client.post(
        "/api/v1/auth/token", data={"username": "nobody", "password": "secret-xyz"}, headers=ZH
    )
    assert resp.status_code == 401
    assert resp.json()["title"] == "用户名或密码错误"
    assert "nobody" not in resp.text and "secret-xyz" not in resp.text

    planner = account("planner")
    resp = client.get("/api/v1/queues/dispatcher", headers={**planner, **ZH})
    assert resp.status_code == 403
    assert resp.json()["title"] == "无权操作"


def test_action_problems_404_409_422_in_chinese(client, account) -> None:
    _code, lon, lat = interior_point()
    dispatcher = account("dispatcher")
    event = post(client, dispatcher, report(lon, lat))
    assert event["status"] == "dispatched"

    resp = client.post(
        "/api/v1/events/999999999/actions", json={"action": "close"}, headers={**dispatcher, **ZH}
    )
    assert resp.status_code == 404
    assert resp.json()["detail"] == "所请求的对象不存在，或您无权查看。"

    resp = client.post(
        f"/api/v1/events/{event['id']}/actions",
        json={"action": "close"},
        headers={**dispatcher, **ZH},
    )
    assert resp.status_code == 409
    body = resp.json()
    assert body["allowed"] == ["reassign"]
    assert body["title"] == "操作与事件当前状态不符"
    assert (
        body["detail"] == "事件当前状态为「派遣」，此操作无法执行。您现在可执行：改派。已为您刷新。"
    )
    # The same refusal in English keeps the raise site's specific text.
    english = act(client, dispatcher, event["id"], "close")
    assert english.status_code == 409 and "does not fit" in english.json()["detail"]

    resp = client.get("/api/v1/lookup", params={"lon": "东经", "lat": 37}, headers=ZH)
    assert resp.status_code == 422
    assert resp.json()["title"] == "请求内容有误"
    assert resp.json()["detail"] == "请检查以下字段：query.lon。"
    assert "东经" not in resp.text
