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
    GM.planner = { dirty: function () { return Object.keys(dirty); } };

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
          ' <button type="button" data-export="' + v.id + '">导出</button>' +
          (v.status === "draft" ? ' <button type="button" data-delete="' + v.id + '">删除</button>' : "") + "</li>";
      }).join("");
      return '<div class="gm-section"><div class="gm-panel-title">版本</div><ul class="gm-list gm-versions">' + rows + "</ul>" +
        '<div class="gm-compare">对比 <select data-role="cmp-a">' + versionOptions() + '</select> 与 <select data-role="cmp-b">' +
        versionOptions() + '</select> <button type="button" data-role="compare">对比</button></div></div>';
    }

    function versionOptions() {
      return versions.map(function (v) { return '<option value="' + v.id + '">v' + v.id + " " + esc(v.label) + "</option>"; }).join("");
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
          var resp = await fetch(cfg.api + "/boundaries/versions/" + b.dataset.export + "/export?format=geojson", {
            headers: { Authorization: "Bearer " + sessionStorage.getItem("gridmap.token") },
          });
          if (!resp.ok) { toast("导出失败", "error"); return; }
          var a = document.createElement("a");
          a.href = URL.createObjectURL(await resp.blob());
          a.download = "boundaries-v" + b.dataset.export + ".geojson";
          a.click();
        });
      });
      var cmp = host.querySelector("[data-role=compare]");
      if (cmp) {
        cmp.addEventListener("click", async function () {
          var a = host.querySelector("[data-role=cmp-a]").value;
          var b = host.querySelector("[data-role=cmp-b]").value;
          var fa = await api(cfg, "/maps/plans/" + a, { crs: cfg.crs });
          var fb = await api(cfg, "/maps/plans/" + b, { crs: cfg.crs });
          layers.changes.clearLayers();
          L.geoJSON(fa.draft, { pmIgnore: true, interactive: false, style: function () { return { color: "#ff7a45", weight: 2, fill: false }; } }).addTo(layers.changes);
          L.geoJSON(fb.draft, { pmIgnore: true, interactive: false, style: function () { return { color: "#52c41a", weight: 2, dashArray: "4 4", fill: false }; } }).addTo(layers.changes);
          side.innerHTML = '<div class="gm-panel-title">对比 v' + esc(a) + '（橙） 与 v' + esc(b) + "（绿虚线）</div>" +
            "<div>网格数 " + fa.draft.features.length + " / " + fb.draft.features.length + "</div>";
        });
      }
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
          layer.on("click", function () { if (editable() && editing !== p.code) { startEditing(p.code); } });
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
              '<button type="button" data-role="save-props">保存属性</button> <button type="button" data-role="done">结束编辑</button></div>'
              : '<span class="gm-muted">点击一个基础网格开始编辑其边界（共用顶点一起移动，吸附相邻网格）</span>') + "</div>" +
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
      L.DomEvent.disableClickPropagation(panel);
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
      try {
        await api(cfg, "/boundaries/versions/" + data.version.id + "/grids/" + encodeURIComponent(p.code), null, {
          method: "PUT", headers: { "Content-Type": "application/json" }, body: gridBody(p.code, next),
        });
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
          L.polyline([a, b], { color: "#fa541c", weight: 2 + Math.min(6, dest[to]), opacity: 0.8, interactive: false }).addTo(arrows);
          var angle = Math.atan2(b.lat - a.lat, b.lng - a.lng) * 180 / Math.PI;
          L.marker(b, { interactive: false, icon: L.divIcon({ className: "gm-arrow", html: '<span style="transform:rotate(' + (-angle) + 'deg)">➤</span>', iconSize: [18, 18] }) }).addTo(arrows);
          L.marker(L.latLng((a.lat + b.lat) / 2, (a.lng + b.lng) / 2), { interactive: false, icon: L.divIcon({ className: "gm-arrow-n", html: String(dest[to]), iconSize: [24, 14] }) }).addTo(arrows);
        });
      });
      var s = impact.summary;
      var grids = impact.grids.map(function (g) {
        return "<tr><td>" + esc(g.code) + "</td><td>" + esc((cfg.changes[g.status] || [g.status === "unchanged" ? "未变" : g.status])[0]) + "</td><td>" +
          num(g.area_before_m2) + " → " + num(g.area_after_m2) + "</td><td>" + g.open_events.before + " → " + g.open_events.after + "</td><td>" +
          g.recent_events.moving_out + "</td></tr>";
      }).join("");
      var workers = impact.workers.filter(function (w) { return w.change !== 0; }).map(function (w) {
        return "<tr><td>" + esc(w.name) + " " + esc(w.worker_no) + "</td><td>" + w.open_events_before + " → " + w.open_events_after + "</td></tr>";
      }).join("");
      side.innerHTML = '<div class="gm-panel-title" data-role="impact-report">影响评估（对比现行 v' + impact.active_version_id + "）</div>" +
        "<div>边界调整 " + s.changed + "、新增 " + s.added + "、删除 " + s.removed + " 个网格；近 30 天 " + s.recent_events_moving +
        " 件、在办 " + s.open_events_moving + " 件事件将改划（地图上箭头 " + flows + " 条）</div>" +
        '<table class="gm-table"><tr><th>网格</th><th>变化</th><th>面积 m²</th><th>在办</th><th>移出</th></tr>' + grids + "</table>" +
        '<table class="gm-table"><tr><th>网格员</th><th>在办事件</th></tr>' + (workers || '<tr><td colspan="2">无变化</td></tr>') + "</table>" +
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
      var code = (window.prompt("新网格编码") || "").trim();
      var name = code ? (window.prompt("新网格名称") || "").trim() : "";
      var parent = code ? (window.prompt("上级网格编码") || "").trim() : "";
      map.removeLayer(shape);
      if (!code || !name) { toast("未填写编码或名称，已取消", "error"); return; }
      try {
        await api(cfg, "/boundaries/versions/" + data.version.id + "/grids", null, {
          method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({
            type: "Feature", geometry: shape.toGeoJSON(9).geometry,
            properties: { code: code, name: name, level: "basic", parent_code: parent || null },
          }),
        });
        toast("已新增网格 " + code, "info");
        await reload();
      } catch (err) { toast("新增失败：" + err.message, "error"); }
    });

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
