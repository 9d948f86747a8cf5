"""The message catalogue: problem titles and details in each language the API speaks.

One plain table keyed by the problem ``type`` slug (the ``kind`` of ``gis/errors.py`` and
``api/errors.py``). English is the language the code raises in, so an English answer keeps
the specific detail written at the raise site; another language replaces title and detail
with this table's wording, filled only from the problem's own structured fields (``allowed``,
``status_now``, the validation ``errors`` locations), never from submitted values.

Languages: ``en`` (default) and ``zh-CN``, chosen from ``Accept-Language`` (RFC 9110 quality
values honoured; any ``zh`` tag means ``zh-CN``). The map pages send ``zh-CN``.
"""

from __future__ import annotations

from typing import Any, Final

DEFAULT: Final = "en"
LANGUAGES: Final = ("en", "zh-CN")

#: kind → (title, detail) in English, for problems worded here rather than at a raise site.
EN: Final[dict[str, tuple[str, str]]] = {
    "form-expected": (
        "Sign-in takes a form",
        "Sign-in takes a form, not JSON: send username and password as "
        "application/x-www-form-urlencoded (curl -d username=… -d password=…).",
    ),
}

#: kind → (title, detail) in Chinese. ``{…}`` fields are filled by :func:`localise`.
ZH: Final[dict[str, tuple[str, str]]] = {
    "unauthorized": ("未登录或登录已失效", "请重新登录后再试。"),
    "bad-credentials": ("用户名或密码错误", "请检查用户名和密码后重新登录。"),
    "forbidden": ("无权操作", "当前账号的角色不允许执行此操作。"),
    "not-found": ("未找到", "所请求的对象不存在，或您无权查看。"),
    "conflict": ("操作冲突", "数据已被他人修改，请刷新后重试。"),
    "conflict:read-only": (
        "版本不是草案，不能修改",
        "已发布的边界版本只读；请先“复制为新草案”，再编辑新草案。",
    ),
    "conflict-action": (
        "操作与事件当前状态不符",
        "事件当前状态为「{status_now}」，此操作无法执行。您现在可执行：{allowed}。已为您刷新。",
    ),
    "validation": ("请求内容有误", "请检查以下字段：{fields}。"),
    "invalid-input": ("请求内容有误", "请求中有无效的值，请检查后重试。"),
    "malformed-body": ("请求格式错误", "请求体不是有效的 JSON。"),
    "unsupported-media-type": ("请求格式不受支持", "请以 application/json 发送请求体。"),
    "not-acceptable": ("无法提供所需格式", "此资源以 JSON 或 GeoJSON 提供，请接受其中之一。"),
    "form-expected": (
        "登录须以表单提交",
        "登录不接受 JSON：请以 application/x-www-form-urlencoded 表单发送 username 和 password"
        "（curl -d username=… -d password=…）。",
    ),
    "limit-exceeded": ("超出限制", "请求超出了允许的大小或数量限制。"),
    "unreadable-file": ("文件无法读取", "请检查文件格式与编码后重新上传。"),
    "unsafe-archive": ("压缩包不安全", "压缩包的结构或压缩比超出允许范围。"),
    "invalid-boundaries": ("边界校验未通过", "请先修正校验问题，再发布。"),
    "idempotency-key-reused": ("重复的上报编号", "同一 client_event_id 已用于内容不同的上报。"),
    "unstorable-value": ("无法保存的值", "文本中不能含 NUL 字符，数字和日期须在字段允许的范围内。"),
    "database-unavailable": ("数据库暂不可用", "请稍后重试。"),
    "embedded-database": ("内置数据库出错", "请查看服务器日志。"),
    "method-not-allowed": ("不支持的请求方法", "此地址不接受该请求方法。"),
    "internal": ("服务器内部错误", "服务器出错，已记录日志，请稍后重试。"),
    # Splits and merges of grids (``gis/editing.py``), one entry per ``reason``.
    "invalid-edit": ("无法完成拆分或合并", "请检查所选网格和分割线后重试。"),
    "invalid-edit:line": ("分割线无效", "分割线须为一笔画成、不自相交的折线。"),
    "invalid-edit:line-misses": ("分割线未经过网格", "分割线没有碰到该网格，请横穿网格重画。"),
    "invalid-edit:line-not-across": (
        "分割线未完整穿过网格",
        "分割线须从网格外开始、穿过网格、在网格外结束，把网格分成两部分。",
    ),
    "invalid-edit:line-crosses-many": (
        "分割线多次穿过网格",
        "一次拆分只能得到两个网格，请只穿过网格一次。",
    ),
    "invalid-edit:multipart": ("网格由多块组成", "只能拆分由一块多边形组成的网格。"),
    "invalid-edit:invalid-grid": (
        "网格几何无效",
        "网格多边形无效（如自相交），请先修复再拆分或合并。",
    ),
    "invalid-edit:has-children": ("网格有下级网格", "只能拆分或合并没有下级的基础网格。"),
    "invalid-edit:merge-count": ("合并网格数量不符", "请选择 2 至 20 个网格进行合并。"),
    "invalid-edit:merge-not-touching": (
        "网格不相邻",
        "所选网格没有共用边界，合并后不是一整块区域。",
    ),
    "invalid-edit:merge-parents": ("网格上级不同", "只能合并同一上级网格下的网格。"),
    "invalid-edit:code-format": ("网格编码格式错误", "网格编码须为 1 至 32 位数字。"),
    "invalid-edit:code-parent": ("网格编码与上级不符", "新网格编码须以上级网格编码开头并更长。"),
    "invalid-edit:code-taken": ("网格编码已存在", "草案中已有该编码的网格，请换一个编码。"),
    "invalid-edit:code-same": ("两个新编码相同", "拆分得到的两个网格须使用不同的编码。"),
}

#: Status names, for ``{status_now}``.
ZH_STATUSES: Final[dict[str, str]] = {
    "reported": "上报",
    "registered": "立案",
    "dispatched": "派遣",
    "claimed": "认领",
    "postponed": "缓办",
    "handled": "处置",
    "rework": "返工",
    "verified": "核查",
    "closed": "结案",
    "evaluated": "评价",
    "returned": "退回",
    "voided": "作废",
}

#: Action names, for ``{allowed}``.
ZH_ACTIONS: Final[dict[str, str]] = {
    "register": "立案",
    "void": "作废",
    "dispatch": "派遣",
    "reassign": "改派",
    "claim": "认领",
    "return": "退回",
    "request_postponement": "申请延期",
    "approve_postponement": "批准延期",
    "deny_postponement": "驳回延期",
    "handle": "处置",
    "verify": "核查",
    "close": "结案",
    "evaluate": "评价",
}

#: Generic titles by status, for kinds the table does not name.
ZH_BY_STATUS: Final[dict[int, str]] = {
    400: "请求有误",
    401: "未登录或登录已失效",
    403: "无权操作",
    404: "未找到",
    409: "操作冲突",
    413: "请求过大",
    415: "请求格式不受支持",
    422: "请求内容有误",
    429: "请求过于频繁",
    500: "服务器内部错误",
    503: "服务暂不可用",
}


def negotiate(header: str | None) -> str:
    """The language to answer in, from an ``Accept-Language`` header."""
    best, best_q = DEFAULT, -1.0
    for part in (header or "").split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        lang = tag.strip().lower()
        found = "zh-CN" if lang.startswith("zh") else "en" if lang.startswith("en") else None
        if found and q > 0 and q > best_q:
            best, best_q = found, q
    return best


def _variant(kind: str, extra: dict[str, Any]) -> str:
    if kind == "conflict" and "allowed" in extra:
        return "conflict-action"
    if f"{kind}:{extra.get('reason')}" in ZH:
        return f"{kind}:{extra.get('reason')}"
    return kind


def localise(
    lang: str, status: int, kind: str, title: str, detail: str, extra: dict[str, Any]
) -> tuple[str, str]:
    """Title and detail of a problem in ``lang``; English keeps the raise site's own text."""
    if lang != "zh-CN":
        return title, detail
    key = _variant(kind, extra)
    zh_title, zh_detail = ZH.get(key, (ZH_BY_STATUS.get(status, "请求失败"), "请求未能完成。"))
    allowed = extra.get("allowed")
    fields = {
        "allowed": "、".join(ZH_ACTIONS.get(a, str(a)) for a in allowed) if allowed else "无",
        "status_now": ZH_STATUSES.get(str(extra.get("status_now")), "未知"),
        "fields": "、".join(
            ".".join(str(p) for p in err.get("loc", [])) for err in extra.get("errors", [])[:5]
        )
        or "请求体",
    }
    return zh_title, zh_detail.format(**fields)
