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

  async function planner(map, layers, cfg, me) {
    var bar = topBar(cfg, me);
    setLive(bar, "static", "规划视图");
    var panel = control(map, "topleft", "gm-plan", '<div class="gm-muted">加载中…</div>');
    var dirty = {};
    var data = null;
    var fitted = false;
    var drawn = {};

    function problemStyle(f) {
      var colour = (cfg.problems[f.properties.kind] || ["", "#ff4d4f"])[1];
      return { color: colour, weight: 3, fillColor: colour, fillOpacity: 0.55, dashArray: null };
    }

    function draw() {
      ["active", "draft", "changes", "problems"].forEach(function (k) { layers[k].clearLayers(); });
      drawn = {};
      GM.drawn = drawn;
      var editable = data.version.editable && cfg.crs === "wgs84";
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
        pmIgnore: !editable,
        style: function () { return { color: "#36cfc9", weight: 1.4, fillColor: "#13c2c2", fillOpacity: 0.12 }; },
        onEachFeature: function (f, layer) {
          var p = f.properties;
          drawn[p.code] = layer;
          layer.bindTooltip('<div class="gm-tip"><b>' + esc(p.name) + '</b> <span class="gm-code">' + esc(p.code) +
            "</span><div>网格员：" + workersText(cfg, p.workers) + '</div><div class="gm-muted">面积 ' +
            num(p.area_km2, 3) + " km²</div></div>", { sticky: true, className: "gm-tooltip" });
          layer.on("pm:edit", function () {
            dirty[p.code] = { layer: layer, props: p };
            layer.setStyle({ color: "#ffffff", weight: 2.5, dashArray: "4 3" });
            renderPanel();
          });
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
          var p = f.properties;
          layer.bindTooltip('<div class="gm-tip"><b>' + esc((cfg.problems[p.kind] || [p.kind])[0]) + "</b> " +
            esc(p.codes.join(" / ")) + "<div>" + esc(p.message) + "</div></div>", { sticky: true, className: "gm-tooltip" });
        },
      }).addTo(layers.problems);
      if (!fitted && data.bbox) {
        map.fitBounds([[data.bbox[1], data.bbox[0]], [data.bbox[3], data.bbox[2]]], { padding: [20, 20] });
        fitted = true;
      }
      if (map.pm) {
        if (editable) {
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
      var counts = Object.keys(data.counts).map(function (k) {
        return '<li><i style="background:' + (cfg.problems[k] || ["", "#ff4d4f"])[1] + '"></i>' +
          esc((cfg.problems[k] || [k])[0]) + " <b>" + num(data.counts[k]) + "</b></li>";
      }).join("");
      var changes = data.changes.features.slice(0, 8).map(function (f) {
        var p = f.properties;
        return '<li data-code="' + esc(p.code) + '"><i style="background:' + (cfg.changes[p.kind] || ["", "#ffa940"])[1] +
          '"></i>' + esc(p.name) + ' <span class="gm-muted">' + num(p.area_m2) + " m²</span></li>";
      }).join("");
      var edits = Object.keys(dirty);
      var statusName = { draft: "草案", published: "已发布", retired: "已停用" }[v.status] || v.status;
      panel.innerHTML =
        '<div class="gm-panel-title">v' + esc(v.id) + " " + esc(v.label) + ' <span class="gm-badge">' + esc(statusName) + "</span></div>" +
        '<div class="gm-muted">对比现行版本：' + esc(data.active ? "v" + data.active.id + " " + data.active.label : "无") + "</div>" +
        '<div class="gm-section">' + (data.valid
          ? '<div class="gm-ok">✓ 校验通过</div>'
          : '<div class="gm-bad">✗ 校验问题 ' + num(data.problems.features.length) + " 处</div><ul class=\"gm-list\">" + counts + "</ul>") + "</div>" +
        '<div class="gm-section"><div>变化区域 <b>' + num(data.changes.features.length) + "</b> 处</div>" +
        (changes ? '<ul class="gm-list gm-clickable">' + changes + "</ul>" : "") + "</div>" +
        (v.editable && cfg.crs !== "wgs84" ? '<div class="gm-muted">GCJ-02 底图下不提供编辑</div>' : "") +
        (v.editable && cfg.crs === "wgs84"
          ? '<div class="gm-section"><div>待提交修改 <b data-role="dirty">' + edits.length + "</b> 个网格</div>" +
            (edits.length ? '<div class="gm-muted">' + esc(edits.join("、")) + "</div>" : '<div class="gm-muted">用左侧工具编辑基础网格边界（已开启吸附）</div>') +
            '<button type="button" data-role="submit"' + (edits.length ? "" : " disabled") + ">提交到草案</button>" +
            ' <button type="button" data-role="reset"' + (edits.length ? "" : " disabled") + ">撤销</button></div>"
          : "") +
        '<div class="gm-result" data-role="result"></div>';
      panel.querySelectorAll("li[data-code]").forEach(function (li) {
        li.addEventListener("click", function () {
          var hit = data.changes.features.filter(function (f) { return f.properties.code === li.dataset.code; })[0];
          if (hit) { map.fitBounds(L.geoJSON(hit).getBounds(), { maxZoom: 17, padding: [60, 60] }); }
        });
      });
      var submit = panel.querySelector("[data-role=submit]");
      if (submit) { submit.addEventListener("click", submitEdits); }
      var reset = panel.querySelector("[data-role=reset]");
      if (reset) { reset.addEventListener("click", function () { dirty = {}; draw(); }); }
    }

    async function submitEdits() {
      var result = panel.querySelector("[data-role=result]");
      var codes = Object.keys(dirty);
      var report = null;
      try {
        for (var i = 0; i < codes.length; i++) {
          var item = dirty[codes[i]];
          var p = item.props;
          report = await api(cfg, "/boundaries/versions/" + data.version.id + "/grids/" + encodeURIComponent(p.code), null, {
            method: "PUT",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({
              type: "Feature",
              geometry: item.layer.toGeoJSON(9).geometry,
              properties: { code: p.code, name: p.name, level: p.level, parent_code: p.parent, population: p.population },
            }),
          });
          delete dirty[codes[i]];
        }
        data = await api(cfg, "/maps/plans/" + cfg.version, { crs: cfg.crs });
        draw();
        result = panel.querySelector("[data-role=result]");
        var valid = report && report.valid !== undefined ? report.valid : data.valid;
        var problems = report && report.problems ? report.problems.length : data.problems.features.length;
        result.innerHTML = valid ? '<div class="gm-ok">已提交；草案校验通过</div>'
          : '<div class="gm-bad">已提交；草案仍有 ' + num(problems) + " 处问题</div>";
        toast("已提交 " + codes.length + " 个网格的修改", "info");
      } catch (e) {
        if (e instanceof AuthNeeded) { location.reload(); return; }
        result.innerHTML = '<div class="gm-bad">提交失败：' + esc(e.message) + "</div>";
      }
    }

    data = await api(cfg, "/maps/plans/" + cfg.version, { crs: cfg.crs });
    draw();
    GM.state.readyAt = Math.round(performance.now());
    GM.state.ready = true;
    document.body.setAttribute("data-gm-ready", "1");
  }

  GM.pages.planner = planner;
})();
