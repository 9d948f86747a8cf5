"""How the maps name and colour things: workflow statuses, grid levels, density ramps.

One table per concern, read by the page builders and handed to the page script as data, so
the legend and the markers can never disagree. Colours are chosen to stay apart on the
dark command-centre background and on a light tile map alike; the status colours run from
red (nobody has acted yet) through orange and yellow (on its way) to green, cyan and blue
(dealt with), with grey for voided reports.
"""

from __future__ import annotations

from typing import Any, Final

import branca.colormap as cm

#: status → (Chinese label, colour); the order is the workflow's.
STATUSES: Final[dict[str, tuple[str, str]]] = {
    "reported": ("上报", "#ff4d4f"),
    "registered": ("立案", "#ff7a45"),
    "dispatched": ("派遣", "#ffa940"),
    "claimed": ("认领", "#fadb14"),
    "postponed": ("缓办", "#d4b106"),
    "returned": ("退回", "#eb2f96"),
    "rework": ("返工", "#ffd8bf"),
    "handled": ("处置", "#95de64"),
    "verified": ("核查", "#36cfc9"),
    "closed": ("结案", "#4096ff"),
    "evaluated": ("评价", "#9254de"),
    "voided": ("作废", "#8c8c8c"),
}

#: Status groups a filter may name instead of listing statuses.
STATUS_GROUPS: Final[dict[str, tuple[str, ...]]] = {
    "open": (
        "reported",
        "registered",
        "dispatched",
        "claimed",
        "returned",
        "postponed",
        "rework",
    ),
    "done": ("handled", "verified", "closed", "evaluated"),
}

GROUP_LABELS: Final[dict[str, str]] = {"open": "未办结", "done": "已办结", "": "全部状态"}

FLAG_LABELS: Final[dict[str, str]] = {
    "near_boundary": "近边界",
    "on_boundary": "在边界上",
    "snapped": "吸附到最近网格",
    "unrouted": "未落入网格",
    "quarantined": "坐标存疑",
    "overdue": "超期",
}

LEVEL_LABELS: Final[dict[str, str]] = {
    "subdistrict": "街道",
    "community": "社区网格",
    "basic": "基础网格",
}

ROLE_LABELS: Final[dict[str, str]] = {
    "full_time": "专职网格员",
    "grid_police": "网格警",
    "law_enforcement": "执法队员",
    "community_staff": "社区工作者",
}

#: Time windows offered by the filters, in hours → label.
WINDOWS: Final[dict[int, str]] = {
    1: "近1小时",
    6: "近6小时",
    24: "近24小时",
    72: "近3天",
    168: "近7天",
    720: "近30天",
}

#: Validation problem kinds on the planner map → (label, colour).
PROBLEM_KINDS: Final[dict[str, tuple[str, str]]] = {
    "overlap": ("重叠", "#ff4d4f"),
    "gap": ("缝隙", "#faad14"),
    "outside_parent": ("超出上级", "#eb2f96"),
    "invalid_geometry": ("几何无效", "#ff7a45"),
    "too_small": ("面积过小", "#d4b106"),
    "empty": ("空几何", "#8c8c8c"),
    "wrong_type": ("类型错误", "#8c8c8c"),
    "crs": ("坐标系错误", "#8c8c8c"),
    "duplicate_code": ("编码重复", "#9254de"),
    "missing_parent": ("缺少上级", "#9254de"),
    "bad_code": ("编码不符", "#9254de"),
}

CHANGE_KINDS: Final[dict[str, tuple[str, str]]] = {
    "changed": ("边界调整", "#ffa940"),
    "added": ("新增网格", "#52c41a"),
    "removed": ("删除网格", "#ff4d4f"),
}


#: Heat colours by intensity (0-1): Leaflet.heat and heatmap.js both take this table.
HEAT_GRADIENT: Final[dict[float, str]] = {
    0.2: "#2f54eb",
    0.45: "#13c2c2",
    0.65: "#fadb14",
    0.85: "#fa8c16",
    1.0: "#f5222d",
}

#: The heatmap page's fixed colour scale, per animation step (hours): the number of events
#: in one ~100 m cell (the API's bins; 1 event per cell ≈ 100 per km²) within one step at
#: which the colour is full red. Fixed per step, never taken from the data, so an ordinary
#: day keeps its colour next to a busy one, and an hour with one event is not red.
HEAT_SCALE: Final[dict[int, int]] = {1: 2, 6: 3, 24: 6, 168: 20}

#: The dispatcher's hazard heat layer, per hazard window (hours): hazard reports summed
#: around a spot (within ~20 px on screen, Leaflet.heat's cells) at which it is full red.
HAZARD_HEAT_SCALE: Final[dict[int, int]] = {1: 1, 24: 2, 72: 3, 168: 5, 720: 10}


def heat_scale(table: dict[int, int], hours: int) -> int:
    """The scale of the longest period in ``table`` not longer than ``hours`` (else the shortest).

    >>> heat_scale(HEAT_SCALE, 24), heat_scale(HEAT_SCALE, 12), heat_scale(HEAT_SCALE, 1)
    (6, 3, 2)
    """
    fitting = [k for k in table if k <= hours]
    return table[max(fitting) if fitting else min(table)]


def heat_legend(table: dict[int, int], hours: int) -> dict[str, Any]:
    """What the page script needs to draw a heat layer and its legend: max and numbers."""
    scale = heat_scale(table, hours)
    return {"max": scale, "ticks": heat_ticks(scale)}


def heat_ticks(scale: int) -> list[int]:
    """Legend numbers for a heat scale: 1, about a quarter, a half, and the scale itself.

    >>> heat_ticks(6), heat_ticks(2), heat_ticks(20)
    ([1, 2, 3, 6], [1, 2], [1, 5, 10, 20])
    """
    return sorted({1, max(1, round(scale / 4)), max(1, round(scale / 2)), scale})


def ramp(steps: int = 7) -> list[str]:
    """A sequential yellow-orange-red ramp for densities, as ``steps`` hex colours."""
    scale = cm.linear.YlOrRd_09.scale(0, steps - 1)
    return [scale(i)[:7] for i in range(steps)]


#: Grade → colour on the leaders' page (A best).
GRADE_COLOURS: Final[dict[str, str]] = {
    "A": "#389e0d",
    "B": "#7cb305",
    "C": "#d4b106",
    "D": "#d46b08",
    "E": "#cf1322",
}


def rate_ramp(steps: int = 5) -> list[str]:
    """A red-yellow-green ramp for rates from 0 to 1, as ``steps`` hex colours."""
    scale = cm.linear.RdYlGn_09.scale(0, steps - 1)
    return [scale(i)[:7] for i in range(steps)]
