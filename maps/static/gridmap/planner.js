/*
 * planner.js: the planner's map (/maps/plans/{version}), loaded after gridmap.js on that page
 * only. It registers itself in GridMap.pages and uses the shared helpers of GridMap.util
 * (sign-in, API calls, page chrome), so the dispatcher's and the planner's code can change
 * independently.
 */
(function () {
  "use strict";

  var GM = window.GridMap;
  var U = GM.util;
  var esc = U.esc, num = U.num, api = U.api, AuthNeeded = U.AuthNeeded, toast = U.toast;
  var topBar = U.topBar, setLive = U.setLive, control = U.control, workersText = U.workersText;
  var GRID_STYLE = U.GRID_STYLE;

  // Problem kinds in Chinese, with the figures the API gives (never its English message).
  var PROBLEM_TEXT = {
    overlap: function (p) { return "重叠 " + num(p.area_m2, 1) + " m²：" + p.codes.join(" 与 "); },
    gap: function (p) { return "缝隙 " + num(p.area_m2, 1) + " m²：" + p.codes.join("、") + " 之间"; },
    outside_parent: function (p) { return "超出上级 " + num(p.area_m2, 1) + " m²：" + p.codes.join(" → "); },
    invalid_geometry: function (p) { return "几何无效（自相交等）：" + p.codes.join("、"); },
    too_small: function (p) { return "面积过小 " + num(p.area_m2, 1) + " m²：" + p.codes.join("、"); },
    empty: function (p) { return "空几何：" + p.codes.join("、"); },
    wrong_type: function (p) { return "不是面要素：" + p.codes.join("、"); },
    crs: function (p) { return "坐标不在经纬度范围内：" + p.codes.join("、"); },
    duplicate_code: function (p) { return "编码重复：" + p.codes.join("、"); },
    missing_parent: function (p) { return "找不到上级网格：" + p.codes.join("、"); },
    bad_code: function (p) { return "编码不符合上级编码：" + p.codes.join("、"); },
  };
  function problemText(p) {
    var f = PROBLEM_TEXT[p.kind];
    return f ? f(p) : p.kind + "：" + p.codes.join("、");
  }
  GM.problemText = problemText;
  var STATUS_NAMES = { draft: "草案", published: "已发布", retired: "已停用" };
  //: The export formats of GET …/export: query value, button text, file suffix.
  var EXPORTS = [["geojson", "GeoJSON", ".geojson"], ["gpkg", "GPKG", ".gpkg"], ["shp", "SHP", ".zip"]];
  //: Colours of the comparison: grids only in A, only in B, redrawn.
  var COMPARE = { removed: ["仅在 A", "#ff7a45"], added: ["仅在 B", "#52c41a"], changed: ["边界或属性改变", "#faad14"] };
  //: Vertices of neighbouring grids closer than this to a dragged vertex move with it.
  var COINCIDENT_M = 0.05;


  function isoLocal(value) {
    // A datetime-local value ("2026-12-01T08:00") as ISO 8601 with this browser's offset.
    var d = new Date(value);
    var off = -d.getTimezoneOffset();
    var sign = off >= 0 ? "+" : "-";
    var pad = function (n) { return String(Math.floor(Math.abs(n))).padStart(2, "0"); };
    return value + ":00" + sign + pad(off / 60) + ":" + pad(off % 60);
  }

  function eachLatLng(latlngs, fn) {
    latlngs.forEach(function (item) {
      if (Array.isArray(item)) { eachLatLng(item, fn); } else { fn(item); }
    });
  }

  async function planner(map, layers, cfg, me) {
    var bar = topBar(cfg, me);
    setLive(bar, "static", "规划视图");
    var panel = control(map, "topleft", "gm-plan", '<div class="gm-muted">加载中…</div>');
    var side = control(map, "topright", "gm-plan-side", "");
    var dirty = {};
    var data = null;
    var versions = [];
    var fitted = false;
    var drawn = {};
    var editing = null;
    var impact = null;
    var arrows = L.layerGroup().addTo(map);
    var dragStart = null;
    var mode = null;  // null, "split" (drawing the cut) or "merge" (clicks select grids)
    var mergeSel = [];
    var pendingSplit = null;
    var newShape = null;  // a polygon just drawn, waiting for its code and name
    GM.planner = {
      dirty: function () { return Object.keys(dirty); },
      mode: function () { return mode; },
      selected: function () { return mergeSel.slice(); },
    };

    function problemStyle(f) {
      var colour = (cfg.problems[f.properties.kind] || ["", "#ff4d4f"])[1];
      return { color: colour, weight: 3, fillColor: colour, fillOpacity: 0.55, dashArray: null };
    }
    function editable() { return !!(data && data.version.editable && cfg.crs === "wgs84"); }

    async function loadVersions() {
      try { versions = await api(cfg, "/boundaries/versions"); } catch (e) { versions = []; }
    }

    function versionList() {
      var rows = versions.slice(0, 12).map(function (v) {
        var here = cfg.version === v.id;
        return '<li data-version="' + v.id + '"><a href="' + esc(cfg.plansUrl + "/" + v.id) + '"' + (here ? ' class="gm-here"' : "") + ">v" + v.id + " " +
          esc(v.label) + '</a> <span class="gm-badge">' + esc(STATUS_NAMES[v.status] || v.status) + (v.active ? "·现行" : "") + "</span>" +
          ' <button type="button" data-copy="' + v.id + '" title="以此版本为底稿新建草案">复制为新草案</button>' +
          ' <span class="gm-export">导出 ' + EXPORTS.map(function (x) {
            return '<button type="button" data-export="' + v.id + '" data-format="' + x[0] + '" title="下载 ' + x[1] + '">' + x[1] + "</button>";
          }).join("") + "</span>" +
          (v.status === "draft" ? ' <button type="button" data-delete="' + v.id + '">删除</button>' : "") + "</li>";
      }).join("");
      return '<div class="gm-section"><div class="gm-panel-title">版本</div><ul class="gm-list gm-versions">' + rows + "</ul>" +
        '<div class="gm-compare">对比 <select data-role="cmp-a">' + versionOptions() + '</select> 与 <select data-role="cmp-b">' +
        versionOptions(true) + '</select> <button type="button" data-role="compare">对比</button></div></div>';
    }

    function versionOptions(active) {
      // A: the version shown; B: the version in force (the usual comparison).
      return versions.map(function (v) {
        var pick = active ? v.active : v.id === cfg.version;
        return '<option value="' + v.id + '"' + (pick ? " selected" : "") + ">v" + v.id + " " + esc(v.label) + (v.active ? "（现行）" : "") + "</option>";
      }).join("");
    }

    function wireVersions(host) {
      host.querySelectorAll("[data-copy]").forEach(function (b) {
        b.addEventListener("click", async function () {
          try {
            var copy = await api(cfg, "/boundaries/versions/" + b.dataset.copy + "/copy", null, {
              method: "POST", headers: { "Content-Type": "application/json" },
              body: JSON.stringify({ label: "v" + b.dataset.copy + " 的修订草案" }),
            });
            location.href = cfg.plansUrl + "/" + copy.id;
          } catch (e) { toast("复制失败：" + e.message, "error"); }
        });
      });
      host.querySelectorAll("[data-delete]").forEach(function (b) {
        b.addEventListener("click", async function () {
          if (!window.confirm("删除草案 v" + b.dataset.delete + "？")) { return; }
          try {
            await api(cfg, "/boundaries/versions/" + b.dataset.delete, null, { method: "DELETE" });
            location.href = cfg.plansUrl;
          } catch (e) { toast("删除失败：" + e.message, "error"); }
        });
      });
      host.querySelectorAll("[data-export]").forEach(function (b) {
        b.addEventListener("click", async function () {
          // The export needs the bearer token, so it is fetched and handed over as a blob.
          var fmt = EXPORTS.filter(function (x) { return x[0] === b.dataset.format; })[0] || EXPORTS[0];
          var resp = await fetch(cfg.api + "/boundaries/versions/" + b.dataset.export + "/export?format=" + fmt[0], {
            headers: { Authorization: "Bearer " + sessionStorage.getItem("gridmap.token"), "Accept-Language": "zh-CN" },
          });
          if (!resp.ok) { toast("导出失败（HTTP " + resp.status + "）", "error"); return; }
          var a = document.createElement("a");
          a.href = URL.createObjectURL(await resp.blob());
          a.download = "gridmap-boundaries-v" + b.dataset.export + fmt[2];
          document.body.appendChild(a);
          a.click();
          a.remove();
        });
      });
      var cmp = host.querySelector("[data-role=compare]");
      if (cmp) {
        cmp.addEventListener("click", async function () {
          var a = host.querySelector("[data-role=cmp-a]").value;
          var b = host.querySelector("[data-role=cmp-b]").value;
          try {
            compare(a, b, await api(cfg, "/maps/plans/" + a, { crs: cfg.crs }), await api(cfg, "/maps/plans/" + b, { crs: cfg.crs }));
          } catch (e) { toast("对比失败：" + e.message, "error"); }
        });
      }
    }

    function gridKey(f) {
      // What makes two versions' grids the same: shape (exact, 9 decimals), name and parent.
      var p = f.properties;
      return JSON.stringify([f.geometry, p.name, p.parent, p.level]);
    }

    function compare(a, b, fa, fb) {
      // The grids that differ between versions A and B, drawn and listed (click to zoom).
      var byCode = function (fc) { var o = {}; fc.draft.features.forEach(function (f) { o[f.properties.code] = f; }); return o; };
      var ga = byCode(fa), gb = byCode(fb);
      var diff = [];
      Object.keys(ga).forEach(function (c) {
        if (!gb[c]) { diff.push({ kind: "removed", f: ga[c] }); } else if (gridKey(ga[c]) !== gridKey(gb[c])) { diff.push({ kind: "changed", f: gb[c], old: ga[c] }); }
      });
      Object.keys(gb).forEach(function (c) { if (!ga[c]) { diff.push({ kind: "added", f: gb[c] }); } });
      diff.sort(function (x, y) { return x.f.properties.code < y.f.properties.code ? -1 : 1; });
      arrows.clearLayers();
      layers.changes.clearLayers();
      diff.forEach(function (d) {
        var colour = COMPARE[d.kind][1];
        if (d.old) { L.geoJSON(d.old, { pmIgnore: true, interactive: false, style: function () { return { color: colour, weight: 1.5, dashArray: "4 4", fill: false }; } }).addTo(layers.changes); }
        L.geoJSON(d.f, { pmIgnore: true, interactive: false, style: function () { return { color: colour, weight: 2.5, fillColor: colour, fillOpacity: 0.35 }; } }).addTo(layers.changes);
      });
      var rows = diff.map(function (d, i) {
        var p = d.f.properties;
        return '<li data-diff="' + i + '"><i style="background:' + COMPARE[d.kind][1] + '"></i>' + esc(COMPARE[d.kind][0]) + " " +
          '<span class="gm-code">' + esc(p.code) + "</span> " + esc(p.name) + "</li>";
      }).join("");
      side.innerHTML = '<div class="gm-panel-title" data-role="compare-report">对比 v' + esc(a) + " 与 v" + esc(b) + "</div>" +
        "<div>网格数 " + fa.draft.features.length + " / " + fb.draft.features.length + "；不同的网格 <b data-role=\"diff-count\">" + diff.length + "</b> 个</div>" +
        (diff.length ? '<ul class="gm-list gm-clickable gm-diff">' + rows + "</ul>" : '<div class="gm-ok">两个版本的网格完全相同</div>');
      L.DomEvent.disableClickPropagation(side);
      side.querySelectorAll("li[data-diff]").forEach(function (li) {
        li.addEventListener("click", function () {
          map.fitBounds(L.geoJSON(diff[Number(li.dataset.diff)].f).getBounds(), { maxZoom: 18, padding: [60, 60] });
        });
      });
      if (diff.length) { map.fitBounds(L.featureGroup(layers.changes.getLayers()).getBounds(), { maxZoom: 17, padding: [40, 40] }); }
      GM.state.compared = diff.length;
    }

    function missing(message) {
      // No such version (or none yet): say so, offer the list, no edit tools.
      if (map.pm) { map.pm.removeControls(); }
      panel.innerHTML = '<div class="gm-bad" data-role="missing">' + esc(message) + "</div>" + versionList();
      wireVersions(panel);
      GM.state.ready = true;
      document.body.setAttribute("data-gm-ready", "1");
    }

    function startEditing(code) {
      stopEditing();
      var layer = drawn[code];
      if (!layer) { return; }
      editing = code;
      // Handles on this grid only; the neighbours stay plain (but can be snapped to).
      layer.pm.enable({ snappable: true, snapDistance: 18, allowSelfIntersection: false, draggable: false });
      layer.setStyle({ color: "#ffffff", weight: 2.5 });
      renderPanel();
    }

    function stopEditing() {
      if (editing && drawn[editing] && drawn[editing].pm.enabled()) { drawn[editing].pm.disable(); }
      editing = null;
    }

    function markDirty(code) {
      var layer = drawn[code];
      dirty[code] = { layer: layer, props: layer.feature.properties };
      layer.setStyle({ color: "#ffffff", weight: 2.5, dashArray: "4 3" });
    }

    function moveCoincident(code, from, to) {
      // Topology: every other grid's copy of the dragged vertex moves with it.
      Object.keys(drawn).forEach(function (other) {
        if (other === code) { return; }
        var layer = drawn[other];
        if (!layer.getBounds().pad(0.01).contains(from)) { return; }
        var latlngs = layer.getLatLngs();
        var moved = 0;
        eachLatLng(latlngs, function (ll) {
          if (map.distance(ll, from) <= COINCIDENT_M) { ll.lat = to.lat; ll.lng = to.lng; moved += 1; }
        });
        if (moved) {
          layer.setLatLngs(latlngs);
          markDirty(other);
        }
      });
    }

    function draw() {
      ["active", "draft", "changes", "problems"].forEach(function (k) { layers[k].clearLayers(); });
      drawn = {};
      editing = null;
      GM.drawn = drawn;
      L.geoJSON(data.active_grids, {
        pmIgnore: true,
        interactive: false,
        style: function (f) {
          return { color: "#adc6ff", weight: f.properties.level === "basic" ? 1.2 : 2.5, dashArray: "5 5", fill: false, opacity: 0.85 };
        },
      }).addTo(layers.active);
      var draftBasic = data.draft.features.filter(function (f) { return f.properties.level === "basic"; });
      var draftUpper = data.draft.features.filter(function (f) { return f.properties.level !== "basic"; });
      L.geoJSON(draftUpper, {
        pmIgnore: true,
        interactive: false,
        style: function (f) { return GRID_STYLE[f.properties.level] || GRID_STYLE.community; },
      }).addTo(layers.draft);
      L.geoJSON(draftBasic, {
        pmIgnore: !editable(),
        style: function () { return { color: "#36cfc9", weight: 1.4, fillColor: "#13c2c2", fillOpacity: 0.12 }; },
        onEachFeature: function (f, layer) {
          var p = f.properties;
          drawn[p.code] = layer;
          layer.bindTooltip('<div class="gm-tip"><b>' + esc(p.name) + '</b> <span class="gm-code">' + esc(p.code) +
            "</span><div>网格员：" + workersText(cfg, p.workers) + '</div><div class="gm-muted">面积 ' +
            num(p.area_km2, 3) + " km²</div></div>", { sticky: true, className: "gm-tooltip" });
          layer.on("click", function () {
            if (!editable()) { return; }
            if (mode === "merge") { toggleMerge(p.code); return; }
            if (mode !== "split" && mode !== "new" && editing !== p.code) { startEditing(p.code); }
          });
          layer.on("pm:markerdragstart", function (e) {
            dragStart = L.latLng(e.markerEvent.target.getLatLng());
          });
          layer.on("pm:markerdragend", function (e) {
            var to = e.markerEvent.target.getLatLng();
            if (dragStart) { moveCoincident(p.code, dragStart, to); }
            dragStart = null;
          });
          layer.on("pm:edit", function () { markDirty(p.code); renderPanel(); });
        },
      }).addTo(layers.draft);
      L.geoJSON(data.changes, {
        pmIgnore: true,
        style: function (f) {
          var c = (cfg.changes[f.properties.kind] || ["", "#ffa940"])[1];
          return { color: c, weight: 2, fillColor: c, fillOpacity: 0.45 };
        },
        onEachFeature: function (f, layer) {
          var p = f.properties;
          layer.bindTooltip('<div class="gm-tip"><b>' + esc((cfg.changes[p.kind] || [p.kind])[0]) + "</b> " +
            esc(p.name) + ' <span class="gm-code">' + esc(p.code) + "</span><div>变化面积 " +
            num(p.area_m2) + " m²</div></div>", { sticky: true, className: "gm-tooltip" });
          // A changed area lies over the grid it belongs to: a click on it is a click on the grid.
          layer.on("click", function () { if (drawn[p.code]) { drawn[p.code].fire("click"); } });
        },
      }).addTo(layers.changes);
      L.geoJSON(data.problems, {
        pmIgnore: true,
        style: problemStyle,
        pointToLayer: function (f, latlng) {
          return L.circleMarker(latlng, Object.assign(problemStyle(f), { radius: 9, fillOpacity: 0.3 }));
        },
        onEachFeature: function (f, layer) {
          layer.bindTooltip('<div class="gm-tip">' + esc(problemText(f.properties)) + "</div>", { sticky: true, className: "gm-tooltip" });
          // A problem lies over the grids it names: a click edits one of them, the next click
          // the next one (an overlap names two).
          layer.on("click", function () {
            var codes = f.properties.codes.filter(function (c) { return drawn[c]; });
            if (!codes.length) { return; }
            var next = codes[(codes.indexOf(editing) + 1) % codes.length];
            drawn[next].fire("click");
          });
        },
      }).addTo(layers.problems);
      if (!fitted && data.bbox) {
        map.fitBounds([[data.bbox[1], data.bbox[0]], [data.bbox[3], data.bbox[2]]], { padding: [20, 20] });
        fitted = true;
      }
      if (map.pm) {
        if (editable()) {
          map.pm.setLang("zh");
          map.pm.setGlobalOptions({ snappable: true, snapDistance: 18, allowSelfIntersection: false });
        } else {
          map.pm.removeControls();
        }
      }
      GM.state.grids = draftBasic.length;
      renderPanel();
    }

    function renderPanel() {
      var v = data.version;
      var problems = data.problems.features.map(function (f, i) {
        var p = f.properties;
        return '<li data-problem="' + i + '"><i style="background:' + (cfg.problems[p.kind] || ["", "#ff4d4f"])[1] + '"></i>' +
          esc(problemText(p)) + "</li>";
      }).join("");
      var edits = Object.keys(dirty);
      var canEdit = editable();
      var grid = editing ? drawn[editing].feature.properties : null;
      panel.innerHTML =
        '<div class="gm-panel-title">v' + esc(v.id) + " " + esc(v.label) + ' <span class="gm-badge">' + esc(STATUS_NAMES[v.status] || v.status) + "</span></div>" +
        '<div class="gm-muted">对比现行版本：' + esc(data.active ? "v" + data.active.id + " " + data.active.label : "无") + "</div>" +
        (v.editable ? "" : '<div class="gm-muted">已发布的版本只读；要修改请“复制为新草案”。</div>' +
          '<button type="button" data-copy="' + v.id + '">复制为新草案</button>') +
        '<div class="gm-section">' + (data.valid
          ? '<div class="gm-ok" data-role="valid">✓ 校验通过</div>'
          : '<div class="gm-bad">✗ 校验问题 ' + num(data.problems.features.length) + ' 处（点击定位）</div><ul class="gm-list gm-clickable gm-problems">' + problems + "</ul>") + "</div>" +
        '<div class="gm-section"><div>变化区域 <b>' + num(data.changes.features.length) + "</b> 处</div></div>" +
        (v.editable && cfg.crs !== "wgs84" ? '<div class="gm-muted">GCJ-02 底图下不提供编辑</div>' : "") +
        (canEdit
          ? '<div class="gm-section"><div>' + (grid ? "正在编辑 <b data-role=\"editing\">" + esc(grid.code) + "</b> " + esc(grid.name) +
              '<div class="gm-form"><label>编码 <input data-field="code" value="' + esc(grid.code) + '"></label>' +
              '<label>名称 <input data-field="name" value="' + esc(grid.name) + '"></label>' +
              '<label>上级 <input data-field="parent" value="' + esc(grid.parent || "") + '"></label>' +
              '<button type="button" data-role="save-props">保存属性</button> <button type="button" data-role="done">结束编辑</button></div>' +
              splitForm(grid)
              : mode === "merge" ? mergeForm()
              : mode === "new" && newShape ? newGridForm()
              : '<span class="gm-muted">点击一个基础网格开始编辑其边界（共用顶点一起移动，吸附相邻网格），或拆分、合并；左侧工具栏可画新网格</span>' +
                ' <div><button type="button" data-role="merge-start">选择网格合并</button></div>') + "</div>" +
            "<div>待提交修改 <b data-role=\"dirty\">" + edits.length + "</b> 个网格</div>" +
            (edits.length ? '<div class="gm-muted">' + esc(edits.join("、")) + "</div>" : "") +
            '<button type="button" data-role="submit"' + (edits.length ? "" : " disabled") + ">提交到草案</button>" +
            ' <button type="button" data-role="reset"' + (edits.length ? "" : " disabled") + ">撤销</button></div>" +
            '<div class="gm-section"><button type="button" data-role="impact">影响评估</button></div>'
          : "") +
        '<div class="gm-result" data-role="result"></div>' + versionList();
      panel.querySelectorAll("li[data-problem]").forEach(function (li) {
        li.addEventListener("click", function () {
          var f = data.problems.features[Number(li.dataset.problem)];
          if (f && f.geometry) { map.fitBounds(L.geoJSON(f).getBounds(), { maxZoom: 19, padding: [60, 60] }); }
        });
      });
      wireVersions(panel);
      var on = function (role, fn) { var b = panel.querySelector("[data-role=" + role + "]"); if (b) { b.addEventListener("click", fn); } };
      on("submit", submitEdits);
      on("reset", function () { dirty = {}; reload(); });
      on("done", function () { stopEditing(); renderPanel(); });
      on("save-props", saveProps);
      on("impact", showImpact);
      on("split", startSplit);
      on("split-cancel", cancelMode);
      on("merge-start", function () { stopEditing(); mode = "merge"; mergeSel = []; renderPanel(); });
      on("merge-cancel", cancelMode);
      on("merge", doMerge);
      on("new-save", saveNewGrid);
      on("new-cancel", cancelMode);
      L.DomEvent.disableClickPropagation(panel);
    }

    function nextCode(parent, taken) {
      // A free code under ``parent``: one more than its highest child (codes are long digit strings).
      var best = null, width = 0;
      Object.keys(drawn).forEach(function (c) {
        var p = drawn[c].feature.properties;
        if ((p.parent || "") === (parent || "")) {
          var n = BigInt(c);
          if (best === null || n > best) { best = n; width = c.length; }
        }
      });
      var next = best === null ? BigInt((parent || "") + "001") : best + 1n;
      var text = String(next).padStart(width, "0");
      while (taken.indexOf(text) >= 0 || drawn[text]) { next += 1n; text = String(next).padStart(width, "0"); }
      return text;
    }

    function splitForm(grid) {
      return '<div class="gm-form gm-split" data-role="split-form"><div class="gm-panel-title">沿线拆分</div>' +
        '<label>较大部分编码 <input data-field="split-a-code" value="' + esc(grid.code) + '"></label>' +
        '<label>名称 <input data-field="split-a-name" value="' + esc(grid.name + "（一）") + '"></label>' +
        '<label>较小部分编码 <input data-field="split-b-code" value="' + esc(nextCode(grid.parent, [grid.code])) + '"></label>' +
        '<label>名称 <input data-field="split-b-name" value="' + esc(grid.name + "（二）") + '"></label>' +
        (mode === "split"
          ? '<div class="gm-hint" data-role="split-hint">在地图上从网格外开始，横穿网格画线，在网格外再次点击最后一点结束</div>' +
            '<button type="button" data-role="split-cancel">取消拆分</button>'
          : '<button type="button" data-role="split">画分割线拆分</button>') + "</div>";
    }

    function mergeForm() {
      var first = mergeSel.length ? drawn[mergeSel[0]].feature.properties : null;
      return '<div class="gm-form gm-merge" data-role="merge-form"><div class="gm-panel-title">合并网格</div>' +
        '<div class="gm-muted">在地图上点击同一上级下相邻的网格加入或移出（2 至 20 个）</div>' +
        '<div>已选 <b data-role="merge-count">' + mergeSel.length + "</b>：" + esc(mergeSel.join("、") || "无") + "</div>" +
        '<label>合并后编码 <input data-field="merge-code" value="' + esc(first ? first.code : "") + '"></label>' +
        '<label>名称 <input data-field="merge-name" value="' + esc(first ? first.name : "") + '"></label>' +
        '<button type="button" data-role="merge"' + (mergeSel.length >= 2 ? "" : " disabled") + ">合并所选</button> " +
        '<button type="button" data-role="merge-cancel">取消</button></div>';
    }

    function field(name) { var i = panel.querySelector("[data-field=" + name + "]"); return i ? i.value.trim() : ""; }

    function cancelMode() {
      if (mode === "split" && map.pm) { map.pm.disableDraw(); }
      mergeSel.forEach(function (c) { if (drawn[c]) { drawn[c].setStyle({ fillColor: "#13c2c2", fillOpacity: 0.12 }); } });
      if (newShape) { map.removeLayer(newShape); newShape = null; }
      mode = null; mergeSel = []; pendingSplit = null;
      renderPanel();
    }

    function startSplit() {
      pendingSplit = {
        code: editing,
        parts: [{ code: field("split-a-code"), name: field("split-a-name") }, { code: field("split-b-code"), name: field("split-b-name") }],
      };
      if (pendingSplit.parts.some(function (x) { return !x.code || !x.name; })) { toast("请填写两个新网格的编码和名称", "error"); return; }
      var code = editing;
      if (drawn[code].pm.enabled()) { drawn[code].pm.disable(); }  // no vertex handles under the cut
      mode = "split";
      map.pm.enableDraw("Line", { snappable: true, snapDistance: 12 });
      renderPanel();
    }

    async function finishSplit(line) {
      var job = pendingSplit;
      mode = null; pendingSplit = null;
      try {
        var out = await api(cfg, "/boundaries/versions/" + data.version.id + "/grids/" + encodeURIComponent(job.code) + "/split", null, {
          method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ line: line, parts: job.parts }),
        });
        await reload();
        result('已拆分 ' + esc(job.code) + " 为 " + esc(out.added.join("、")), out.valid);
        GM.state.split = (GM.state.split || 0) + 1;
      } catch (e) {
        if (e instanceof AuthNeeded) { location.reload(); return; }
        toast("拆分失败：" + e.message, "error");
        editing = null;
        startEditing(job.code);
        result("拆分失败：" + esc(e.message), false);
      }
    }

    function toggleMerge(code) {
      var i = mergeSel.indexOf(code);
      if (i >= 0) { mergeSel.splice(i, 1); } else { mergeSel.push(code); }
      drawn[code].setStyle(i >= 0 ? { fillColor: "#13c2c2", fillOpacity: 0.12 } : { fillColor: "#fa8c16", fillOpacity: 0.45 });
      renderPanel();
    }

    async function doMerge() {
      var body = { codes: mergeSel.slice(), result: { code: field("merge-code"), name: field("merge-name") } };
      try {
        var out = await api(cfg, "/boundaries/versions/" + data.version.id + "/grids/merge", null, {
          method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
        });
        mode = null; mergeSel = [];
        await reload();
        result("已合并 " + esc(out.removed.join("、")) + " 为 " + esc(out.added[0]), out.valid);
        GM.state.merged = (GM.state.merged || 0) + 1;
      } catch (e) {
        if (e instanceof AuthNeeded) { location.reload(); return; }
        toast("合并失败：" + e.message, "error");
        result("合并失败：" + esc(e.message), false);
      }
    }

    function result(html, ok) {
      var box = panel.querySelector("[data-role=result]");
      box.innerHTML = '<div class="' + (ok ? "gm-ok" : "gm-bad") + '">' + html +
        (ok ? "；草案校验通过" : data.valid ? "" : "；草案仍有 " + num(data.problems.features.length) + " 处问题") + "</div>";
    }

    async function reload() {
      data = await api(cfg, "/maps/plans/" + cfg.version, { crs: cfg.crs });
      draw();
    }

    function gridBody(code, props) {
      var layer = drawn[code];
      return JSON.stringify({
        type: "Feature",
        geometry: layer.toGeoJSON(9).geometry,
        properties: { code: props.code, name: props.name, level: props.level, parent_code: props.parent, population: props.population },
      });
    }

    async function saveProps() {
      var p = drawn[editing].feature.properties;
      var next = Object.assign({}, p, {
        code: panel.querySelector("[data-field=code]").value.trim(),
        name: panel.querySelector("[data-field=name]").value.trim(),
        parent: panel.querySelector("[data-field=parent]").value.trim() || null,
      });
      var base = "/boundaries/versions/" + data.version.id + "/grids";
      try {
        if (next.code !== p.code) {
          // A new code: the grid is added under it, then the old code removed (the API keeps
          // a grid's code fixed on PUT, its identity across versions).
          await api(cfg, base, null, { method: "POST", headers: { "Content-Type": "application/json" }, body: gridBody(p.code, next) });
          await api(cfg, base + "/" + encodeURIComponent(p.code), null, { method: "DELETE" });
        } else {
          await api(cfg, base + "/" + encodeURIComponent(p.code), null, {
            method: "PUT", headers: { "Content-Type": "application/json" }, body: gridBody(p.code, next),
          });
        }
        toast("已保存网格属性", "info");
        await reload();
      } catch (e) { toast("保存失败：" + e.message, "error"); }
    }

    async function submitEdits() {
      var codes = Object.keys(dirty);
      var report = null;
      try {
        stopEditing();
        for (var i = 0; i < codes.length; i++) {
          var p = dirty[codes[i]].props;
          report = await api(cfg, "/boundaries/versions/" + data.version.id + "/grids/" + encodeURIComponent(p.code), null, {
            method: "PUT", headers: { "Content-Type": "application/json" }, body: gridBody(codes[i], p),
          });
          delete dirty[codes[i]];
        }
        await reload();
        var result = panel.querySelector("[data-role=result]");
        var valid = report && report.valid !== undefined ? report.valid : data.valid;
        result.innerHTML = valid ? '<div class="gm-ok">已提交 ' + codes.length + " 个网格；草案校验通过</div>"
          : '<div class="gm-bad">已提交；草案仍有 ' + num(data.problems.features.length) + " 处问题</div>";
        GM.state.submitted = (GM.state.submitted || 0) + 1;
      } catch (e) {
        if (e instanceof AuthNeeded) { location.reload(); return; }
        panel.querySelector("[data-role=result]").innerHTML = '<div class="gm-bad">提交失败：' + esc(e.message) + "</div>";
      }
    }

    function centroid(code) {
      var layer = drawn[code];
      return layer ? layer.getBounds().getCenter() : null;
    }

    async function showImpact() {
      impact = await api(cfg, "/boundaries/versions/" + data.version.id + "/impact", { days: 30, changed_only: true });
      arrows.clearLayers();
      var flows = 0;
      impact.grids.forEach(function (g) {
        var dest = Object.assign({}, g.recent_events.destinations);
        Object.keys(g.open_events.destinations).forEach(function (k) { dest[k] = (dest[k] || 0) + g.open_events.destinations[k]; });
        Object.keys(dest).forEach(function (to) {
          var a = centroid(g.code), b = centroid(to);
          if (!a || !b || to === g.code) { return; }
          flows += 1;
          L.polyline([a, b], { color: "#fa541c", weight: 3 + Math.min(6, dest[to]), opacity: 0.85, interactive: false }).addTo(arrows);
          var pa = map.latLngToLayerPoint(a), pb = map.latLngToLayerPoint(b);
          var angle = Math.atan2(pb.y - pa.y, pb.x - pa.x) * 180 / Math.PI;
          L.marker(b, { interactive: false, icon: L.divIcon({ className: "gm-arrow", html: '<span style="transform:rotate(' + angle + 'deg)">➤</span>', iconSize: [24, 24] }) }).addTo(arrows);
          L.marker(L.latLng((a.lat + b.lat) / 2, (a.lng + b.lng) / 2), { interactive: false, icon: L.divIcon({ className: "gm-arrow-n", html: String(dest[to]), iconSize: [24, 14] }) }).addTo(arrows);
        });
      });
      var s = impact.summary;
      var byCode = {};
      impact.grids.forEach(function (g) { byCode[g.code] = g; });
      var grids = impact.grids.map(function (g) {
        return '<tr data-grid="' + esc(g.code) + '"><td><span class="gm-code">' + esc(g.code) + "</span> " + esc(g.name || "") + "</td><td>" +
          esc((cfg.changes[g.status] || [g.status === "unchanged" ? "未变" : g.status])[0]) + "</td><td>" +
          num(g.area_before_m2) + " → " + num(g.area_after_m2) + "</td><td>" + g.open_events.before + " → " + g.open_events.after + "</td><td>" +
          g.recent_events.moving_out + " / " + g.recent_events.moving_in + "</td></tr>";
      }).join("");
      // Every worker of a changed grid: open events in all their grids before → after, and the
      // last 30 days' events leaving / joining their changed grids.
      var workers = impact.workers.map(function (w) {
        var out = 0, inn = 0;
        w.grids.forEach(function (c) { if (byCode[c]) { out += byCode[c].recent_events.moving_out; inn += byCode[c].recent_events.moving_in; } });
        return '<tr data-worker="' + esc(w.worker_no) + '"><td>' + esc(w.name) + ' <span class="gm-code">' + esc(w.worker_no) + "</span></td><td>" +
          w.open_events_before + " → " + w.open_events_after + (w.change ? ' <b class="gm-bad">(' + (w.change > 0 ? "+" : "") + w.change + ")</b>" : "") +
          "</td><td>" + out + " / " + inn + "</td></tr>";
      }).join("");
      side.innerHTML = '<div class="gm-panel-title" data-role="impact-report">影响评估（对比现行 v' + impact.active_version_id + "）</div>" +
        "<div>边界调整 " + s.changed + "、新增 " + s.added + "、删除 " + s.removed + " 个网格；近 30 天 " + s.recent_events_moving +
        " 件、在办 " + s.open_events_moving + " 件事件将改划（地图上箭头 " + flows + " 条）</div>" +
        '<table class="gm-table gm-impact-grids"><tr><th>网格</th><th>变化</th><th>面积 m²（前 → 后）</th><th>在办（前 → 后）</th><th>近30天 移出/移入</th></tr>' + grids + "</table>" +
        '<table class="gm-table gm-impact-workers"><tr><th>网格员</th><th>在办事件（前 → 后）</th><th>近30天 移出/移入</th></tr>' +
        (workers || '<tr><td colspan="3">没有网格员受影响</td></tr>') + "</table>" +
        '<div class="gm-section">发布：<button type="button" data-role="publish-now">确认立即发布</button>' +
        '<div><input type="datetime-local" data-role="publish-at"> <button type="button" data-role="publish-later">定时发布</button></div>' +
        '<div data-role="publish-result"></div></div>';
      L.DomEvent.disableClickPropagation(side);
      side.querySelector("[data-role=publish-now]").addEventListener("click", function () { publish(null); });
      side.querySelector("[data-role=publish-later]").addEventListener("click", function () {
        var at = side.querySelector("[data-role=publish-at]").value;
        if (!at) { toast("请选择生效时间", "error"); return; }
        publish(isoLocal(at));
      });
    }

    async function publish(at) {
      var out = side.querySelector("[data-role=publish-result]");
      try {
        var body = at ? { effective_from: at } : {};
        var result = await api(cfg, "/boundaries/versions/" + data.version.id + "/publish", null, {
          method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
        });
        out.innerHTML = '<div class="gm-ok" data-role="published">' + (at ? "已定时发布，生效时间 " + esc(at) : "已发布，现已生效") + "</div>";
        GM.state.published = result.version.id;
        await loadVersions();
        await reload();
      } catch (e) {
        out.innerHTML = '<div class="gm-bad">发布失败：' + esc(e.message) + "</div>";
      }
    }

    map.on("pm:create", async function (e) {
      // A new basic grid drawn with Geoman's polygon tool goes to POST …/grids.
      var shape = e.layer;
      if (!editable()) { map.removeLayer(shape); return; }
      if (e.shape === "Line") {
        map.removeLayer(shape);
        if (mode === "split" && pendingSplit) { await finishSplit(shape.toGeoJSON(9).geometry); }
        return;
      }
      // The shape stays on the map, dashed, while the planner names it in the panel.
      cancelMode();
      stopEditing();
      shape.setStyle({ color: "#ffd666", weight: 2, dashArray: "5 4", fillOpacity: 0.2 });
      if (shape.pm) { shape.pm.disable(); }
      newShape = shape;
      mode = "new";
      renderPanel();
    });

    function parentAt(latlng) {
      // The parent of the basic grid under a point (the usual parent of a grid drawn there).
      var found = null;
      Object.keys(drawn).forEach(function (c) {
        if (!found && drawn[c].getBounds().contains(latlng)) { found = drawn[c].feature.properties.parent; }
      });
      return found || (Object.keys(drawn).length ? drawn[Object.keys(drawn)[0]].feature.properties.parent : "");
    }

    function newGridForm() {
      var parent = parentAt(newShape.getBounds().getCenter()) || "";
      return '<div class="gm-form gm-new" data-role="new-form"><div class="gm-panel-title">新网格</div>' +
        '<label>编码 <input data-field="new-code" value="' + esc(nextCode(parent, [])) + '"></label>' +
        '<label>名称 <input data-field="new-name" value=""></label>' +
        '<label>上级 <input data-field="new-parent" value="' + esc(parent) + '"></label>' +
        '<button type="button" data-role="new-save">保存新网格</button> <button type="button" data-role="new-cancel">取消</button></div>';
    }

    async function saveNewGrid() {
      var code = field("new-code"), name = field("new-name"), parent = field("new-parent");
      if (!code || !name) { toast("请填写新网格的编码和名称", "error"); return; }
      try {
        await api(cfg, "/boundaries/versions/" + data.version.id + "/grids", null, {
          method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({
            type: "Feature", geometry: newShape.toGeoJSON(9).geometry,
            properties: { code: code, name: name, level: "basic", parent_code: parent || null },
          }),
        });
        map.removeLayer(newShape);
        newShape = null; mode = null;
        await reload();
        result("已新增网格 " + esc(code), data.valid);
        GM.state.added = (GM.state.added || 0) + 1;
      } catch (err) {
        if (err instanceof AuthNeeded) { location.reload(); return; }
        toast("新增失败：" + err.message, "error");
        result("新增失败：" + esc(err.message), false);
      }
    }

    await loadVersions();
    if (!cfg.version) {
      missing(versions.length ? "请选择一个版本；已发布的版本可复制为新草案后编辑。" : "还没有任何边界版本。");
      return;
    }
    try {
      data = await api(cfg, "/maps/plans/" + cfg.version, { crs: cfg.crs });
    } catch (e) {
      if (e.status === 404) { missing("版本 v" + cfg.version + " 不存在（可能已删除）。请从下方列表选择。"); return; }
      throw e;
    }
    draw();
    GM.state.readyAt = Math.round(performance.now());
    GM.state.ready = true;
    document.body.setAttribute("data-gm-ready", "1");
  }

  GM.pages.planner = planner;
})();
