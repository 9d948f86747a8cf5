/*
 * gridmap.js: the map pages' controller (dispatcher live map, heatmaps; the planner map's
 * own code is in planner.js, which uses the helpers exposed on GridMap.util).
 *
 * folium renders each page as a shell: an empty map, empty layers, plugins. This script
 * signs the user in, loads the layers from the API with the bearer token in the
 * Authorization header (the token lives in sessionStorage, this tab only, and never in a
 * URL), draws them, and keeps the dispatcher's map live from the change feed.
 *
 * Everything the API returns is data: strings are escaped before they reach innerHTML.
 * window.GridMap.state is what the browser tests and the benchmark read (ready, counts).
 */
(function () {
  "use strict";

  var TOKEN_KEY = "gridmap.token";
  var GM = { state: { ready: false, kind: null, events: 0, grids: 0, changes: 0, live: "off", errors: [] } };

  // --- small utilities ---------------------------------------------------------------

  function esc(value) {
    return String(value === null || value === undefined ? "" : value)
      .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }

  function el(tag, attrs, html) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (html !== undefined) { node.innerHTML = html; }
    return node;
  }

  function num(n, digits) {
    if (n === null || n === undefined || isNaN(n)) { return "—"; }
    return Number(n).toLocaleString("zh-CN", { maximumFractionDigits: digits === undefined ? 0 : digits });
  }

  function clock(date) {
    var d = date || new Date();
    return [d.getHours(), d.getMinutes(), d.getSeconds()].map(function (x) {
      return (x < 10 ? "0" : "") + x;
    }).join(":");
  }

  function localTime(iso) {
    var d = new Date(iso);
    if (isNaN(d)) { return ""; }
    var pad = function (x) { return (x < 10 ? "0" : "") + x; };
    return pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }

  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }

  function debounce(fn, ms) {
    var timer = null;
    return function () {
      if (timer) { return; }
      timer = setTimeout(function () { timer = null; fn(); }, ms);
    };
  }

  function query(params) {
    var parts = [];
    Object.keys(params || {}).forEach(function (k) {
      var v = params[k];
      if (v === null || v === undefined || v === "" || (Array.isArray(v) && !v.length)) { return; }
      if (Array.isArray(v)) { v = v.join(","); }
      parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(v));
    });
    return parts.length ? "?" + parts.join("&") : "";
  }

  function fail(message) {
    GM.state.errors.push(String(message));
    toast(message, "error");
  }

  // --- sign-in and API calls ---------------------------------------------------------

  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  function signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    location.reload();
  }

  function AuthNeeded(message) { this.message = message; }

  async function api(cfg, path, params, options) {
    var opts = options || {};
    var headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
    headers.Authorization = "Bearer " + token();
    var resp = await fetch(cfg.api + path + query(params), {
      method: opts.method || "GET",
      headers: headers,
      body: opts.body,
      signal: opts.signal,
    });
    if (resp.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      throw new AuthNeeded("登录已失效，请重新登录");
    }
    var body = null;
    var text = await resp.text();
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
    if (!resp.ok) {
      var err = new Error((body && (body.detail || body.title)) || ("HTTP " + resp.status));
      err.status = resp.status;
      err.body = body;
      throw err;
    }
    return body;
  }

  function signInForm(cfg, note) {
    return new Promise(function (resolve) {
      var roles = cfg.roles.map(function (r) { return ROLE_NAMES[r] || r; }).join("、");
      var overlay = el("div", { class: "gm-signin", role: "dialog", "aria-modal": "true" },
        '<form class="gm-signin-card">' +
        '<div class="gm-brand">网格化管理 · gridmap</div>' +
        "<h1>" + esc(cfg.title) + "</h1>" +
        '<p class="gm-muted">请使用 ' + esc(roles) + " 账号登录</p>" +
        (note ? '<p class="gm-error">' + esc(note) + "</p>" : "") +
        '<label>用户名<input name="username" autocomplete="username" required></label>' +
        '<label>密码<input name="password" type="password" autocomplete="current-password" required></label>' +
        '<button type="submit">登录</button>' +
        '<p class="gm-error" data-role="error"></p>' +
        "</form>");
      document.body.appendChild(overlay);
      var form = overlay.querySelector("form");
      form.username.focus();
      form.addEventListener("submit", async function (ev) {
        ev.preventDefault();
        var error = overlay.querySelector("[data-role=error]");
        error.textContent = "";
        try {
          var resp = await fetch(cfg.api + "/auth/token", {
            method: "POST",
            headers: { "Content-Type": "application/x-www-form-urlencoded" },
            body: new URLSearchParams({ username: form.username.value, password: form.password.value }),
          });
          var body = await resp.json();
          if (!resp.ok) { throw new Error(body.detail || "登录失败"); }
          sessionStorage.setItem(TOKEN_KEY, body.access_token);
          overlay.remove();
          resolve();
        } catch (e) {
          error.textContent = e.message === "Unknown user or wrong password." ? "用户名或密码错误" : e.message;
        }
      });
    });
  }

  var ROLE_NAMES = { admin: "管理员", planner: "规划员", dispatcher: "调度员", worker: "网格员", reporter: "上报系统" };

  async function signedIn(cfg) {
    var note = null;
    for (;;) {
      if (!token()) { await signInForm(cfg, note); }
      try {
        var me = await api(cfg, "/auth/me");
        if (me.role !== "admin" && cfg.roles.indexOf(me.role) < 0) {
          sessionStorage.removeItem(TOKEN_KEY);
          note = "当前账号（" + (ROLE_NAMES[me.role] || me.role) + "）无权查看此页面";
          continue;
        }
        return me;
      } catch (e) {
        if (e instanceof AuthNeeded) { note = e.message; continue; }
        throw e;
      }
    }
  }

  // --- page chrome -------------------------------------------------------------------

  var toastBox = null;
  function toast(message, kind) {
    if (!toastBox) { toastBox = el("div", { class: "gm-toasts" }); document.body.appendChild(toastBox); }
    var item = el("div", { class: "gm-toast gm-toast-" + (kind || "info") }, esc(message));
    toastBox.appendChild(item);
    setTimeout(function () { item.remove(); }, kind === "error" ? 12000 : 5000);
  }

  function topBar(cfg, me, extra) {
    var bar = el("header", { class: "gm-topbar" },
      '<div class="gm-brand">网格化管理</div>' +
      '<div class="gm-title">' + esc(cfg.title) + "</div>" +
      '<div class="gm-subtitle" data-role="subtitle"></div>' +
      '<div class="gm-spacer"></div>' +
      (extra || "") +
      '<div class="gm-live" data-role="live"><span class="gm-dot"></span><span data-role="live-text">连接中</span></div>' +
      '<div class="gm-user">' + esc(me.display_name || me.username) + " · " + esc(ROLE_NAMES[me.role] || me.role) +
      ' <button type="button" data-role="signout">退出</button></div>');
    document.body.appendChild(bar);
    bar.querySelector("[data-role=signout]").addEventListener("click", signOut);
    document.body.classList.add("gm-has-topbar");
    return bar;
  }

  function setLive(bar, mode, text) {
    GM.state.live = mode;
    var live = bar.querySelector("[data-role=live]");
    if (!live) { return; }
    live.className = "gm-live gm-live-" + mode;
    live.querySelector("[data-role=live-text]").textContent = text;
  }

  function control(map, position, className, html) {
    var Ctl = L.Control.extend({
      onAdd: function () {
        var div = L.DomUtil.create("div", "gm-panel " + className);
        div.innerHTML = html;
        L.DomEvent.disableClickPropagation(div);
        L.DomEvent.disableScrollPropagation(div);
        return div;
      },
    });
    var ctl = new Ctl({ position: position });
    ctl.addTo(map);
    return ctl.getContainer();
  }

  function options(map, selected) {
    return Object.keys(map).map(function (k) {
      return '<option value="' + esc(k) + '"' + (String(selected) === String(k) ? " selected" : "") + ">" + esc(map[k]) + "</option>";
    }).join("");
  }

  function categoryOptions(categories, selected) {
    var chosen = (selected || []).join(",");
    var hazards = categories.filter(function (c) { return c.hazard; }).map(function (c) { return c.code; }).join(",");
    var html = '<option value="">全部类别</option>';
    html += '<option value="' + esc(hazards) + '"' + (chosen === hazards ? " selected" : "") + ">隐患类（全部）</option>";
    var groups = {};
    categories.forEach(function (c) {
      (groups[c.big_class] = groups[c.big_class] || { name: c.big_class_name, items: [] }).items.push(c);
    });
    Object.keys(groups).sort().forEach(function (big) {
      var g = groups[big];
      var all = g.items.map(function (c) { return c.code; }).join(",");
      html += '<optgroup label="' + esc(big + " " + g.name) + '">';
      html += '<option value="' + esc(all) + '"' + (chosen === all ? " selected" : "") + ">" + esc(g.name) + "（全部）</option>";
      g.items.forEach(function (c) {
        html += '<option value="' + esc(c.code) + '"' + (chosen === c.code ? " selected" : "") + ">" +
          esc(c.code + " " + c.name) + (c.hazard ? " ⚠" : "") + "</option>";
      });
      html += "</optgroup>";
    });
    return html;
  }

  function statusOptions(cfg, selected) {
    var chosen = (selected || []).join(",");
    var html = '<option value="">全部状态</option>';
    html += '<option value="open"' + (chosen === "open" ? " selected" : "") + ">未办结</option>";
    html += '<option value="done"' + (chosen === "done" ? " selected" : "") + ">已办结</option>";
    cfg.statusOrder.forEach(function (s) {
      html += '<option value="' + s + '"' + (chosen === s ? " selected" : "") + ">" + esc(cfg.statuses[s][0]) + "</option>";
    });
    return html;
  }

  // --- panes: explicit z-order -----------------------------------------------------------

  // Leaflet's default panes put every vector layer in one overlay pane, where the last one
  // added (a grid polygon, the heat canvas re-added by the layer control) takes the click.
  // Each kind of layer gets its own pane instead. Panes above the grids let the mouse
  // through (pointer-events: none) except on their interactive shapes, so grid tooltips
  // keep working under the markers.
  //   overlayPane 400: grids, density choropleth, planner layers
  //   gm-heat     420: heat canvases (never take the mouse)
  //   gm-events   450: event markers (SVG, clickable)
  //   markerPane  600: clusters
  //   gm-pulse    630: "new event" rings (never take the mouse)
  //   gm-labels   640: community names, above the clusters (never take the mouse)
  var PANES = [["gm-heat", 420], ["gm-events", 450], ["gm-pulse", 630], ["gm-labels", 640]];

  function createPanes(map) {
    PANES.forEach(function (p) {
      var pane = map.getPane(p[0]) || map.createPane(p[0]);
      pane.style.zIndex = String(p[1]);
      pane.style.pointerEvents = "none";
    });
  }

  // Move a layer folium already added into one of our panes.
  function intoPane(map, layer, pane) {
    var shown = map.hasLayer(layer);
    if (shown) { map.removeLayer(layer); }
    layer.options.pane = pane;
    if (shown) { map.addLayer(layer); }
  }

  // --- grids ---------------------------------------------------------------------------

  var GRID_STYLE = {
    basic: { color: "#36cfc9", weight: 1, opacity: 0.75, fillColor: "#13c2c2", fillOpacity: 0.05 },
    community: { color: "#ffd666", weight: 3, opacity: 0.95, fill: false },
    subdistrict: { color: "#ffffff", weight: 3.5, opacity: 0.9, fill: false, dashArray: "8 6" },
  };

  function workersText(cfg, workers) {
    if (!workers || !workers.length) { return "（未配置网格员）"; }
    var shown = workers.slice(0, 4).map(function (w) {
      return esc(w[1]) + '<span class="gm-muted">（' + esc(cfg.workerRoles[w[2]] || w[2]) + "）</span>";
    }).join("、");
    return shown + (workers.length > 4 ? " 等" + workers.length + "人" : "");
  }

  function drawGrids(cfg, fc, basicGroup, communityGroup, stats, opts) {
    var byCode = {};
    var basicFeatures = fc.features.filter(function (f) { return f.properties.level === "basic"; });
    var upper = fc.features.filter(function (f) { return f.properties.level !== "basic"; });
    var basic = L.geoJSON(basicFeatures, {
      style: function () { return GRID_STYLE.basic; },
      pmIgnore: true,
      onEachFeature: function (feature, layer) {
        var p = feature.properties;
        byCode[p.code] = layer;
        layer.bindTooltip(function () {
          var s = (stats && stats.grids && stats.grids[p.code]) || { open: 0, events: 0 };
          return '<div class="gm-tip"><b>' + esc(p.name) + '</b> <span class="gm-code">' + esc(p.code) + "</span>" +
            "<div>网格员：" + workersText(cfg, p.workers) + "</div>" +
            '<div>未办结事件：<b class="gm-hot">' + num(s.open) + "</b>" +
            (opts && opts.windowLabel ? " · " + esc(opts.windowLabel) + "事件：" + num(s.events) : "") + "</div>" +
            '<div class="gm-muted">面积 ' + num(p.area_km2, 3) + " km²" +
            (p.population ? " · 人口 " + num(p.population) : "") + "</div></div>";
        }, { sticky: true, className: "gm-tooltip", direction: "top", offset: [0, -6] });
        layer.on("mouseover", function () { layer.setStyle({ weight: 2.5, fillOpacity: 0.18 }); });
        layer.on("mouseout", function () { basic.resetStyle(layer); });
      },
    });
    basic.addTo(basicGroup);
    var outlines = L.geoJSON(upper, {
      style: function (f) { return GRID_STYLE[f.properties.level] || GRID_STYLE.community; },
      interactive: false,
      pmIgnore: true,
    });
    outlines.addTo(communityGroup);
    upper.forEach(function (f) {
      if (f.properties.level !== "community") { return; }
      var centre = L.geoJSON(f).getBounds().getCenter();
      L.marker(centre, {
        icon: L.divIcon({ className: "gm-community-label", html: "<span>" + esc(f.properties.name) + "</span>", iconSize: null }),
        pane: "gm-labels",
        interactive: false,
        keyboard: false,
        pmIgnore: true,
      }).addTo(communityGroup);
    });
    GM.state.grids = basicFeatures.length;
    return { basic: basic, outlines: outlines, byCode: byCode, features: basicFeatures };
  }

  // Search by grid code or name, and (on the dispatcher's map, with findEvent) by event
  // number: "#123" or a bare number shorter than a grid code. Enter and the datalist's
  // "change" can both fire for one search; the same text within a second runs once.
  function searchBox(map, grids, host, findEvent) {
    var list = "gm-grid-list-" + Math.random().toString(36).slice(2);
    var box = el("div", { class: "gm-search" },
      '<input type="search" placeholder="' + (findEvent ? "搜索网格编码、名称或事件编号" : "搜索网格编码或名称") +
      '" list="' + list + '" aria-label="搜索">' +
      '<datalist id="' + list + '">' +
      grids.features.map(function (f) {
        return '<option value="' + esc(f.properties.code + " " + f.properties.name) + '"></option>';
      }).join("") + "</datalist>");
    host.appendChild(box);
    var input = box.querySelector("input");
    var last = { text: null, at: 0 };
    function showGrid(hit) {
      var layer = grids.byCode[hit.properties.code];
      map.fitBounds(layer.getBounds(), { maxZoom: 17, padding: [40, 40] });
      layer.setStyle({ color: "#ffffff", weight: 4, fillOpacity: 0.25 });
      setTimeout(function () { grids.basic.resetStyle(layer); }, 2500);
      layer.openTooltip(layer.getBounds().getCenter());
    }
    async function go() {
      var text = input.value.trim();
      if (!text) { return; }
      var now = Date.now();
      if (text === last.text && now - last.at < 1000) { return; }
      last = { text: text, at: now };
      var number = /^#\s*(\d{1,12})$/.exec(text) || (/^\d{1,9}$/.test(text) ? [text, text] : null);
      if (findEvent && number) {
        if (await findEvent(Number(number[1]))) { return; }
        if (text.charAt(0) === "#") { toast("未找到事件：" + text, "warn"); return; }
      }
      var hit = grids.features.filter(function (f) {
        var p = f.properties;
        return text.indexOf(p.code) === 0 || p.name.indexOf(text) >= 0 || p.code.indexOf(text) >= 0;
      })[0];
      if (!hit) { toast((findEvent ? "未找到网格或事件：" : "未找到网格：") + text, "warn"); return; }
      showGrid(hit);
    }
    input.addEventListener("change", go);
    input.addEventListener("keydown", function (e) { if (e.key === "Enter") { go(); } });
  }

  function quantileBreaks(values, classes) {
    var sorted = values.filter(function (v) { return v > 0; }).sort(function (a, b) { return a - b; });
    if (!sorted.length) { return []; }
    var breaks = [];
    for (var i = 1; i < classes; i++) {
      var v = sorted[Math.min(sorted.length - 1, Math.floor((i * sorted.length) / classes))];
      if (!breaks.length || v > breaks[breaks.length - 1]) { breaks.push(v); }
    }
    return breaks;
  }

  function densityLayer(cfg, grids, stats, group, legendHost) {
    group.clearLayers();
    var usePop = cfg.filters.per === "population" ||
      (cfg.filters.per === "auto" && grids.features.every(function (f) { return f.properties.population > 0; }));
    var unit = usePop ? "件/千人" : "件/km²";
    var value = {};
    grids.features.forEach(function (f) {
      var p = f.properties;
      var n = ((stats.grids || {})[p.code] || {}).events || 0;
      value[p.code] = usePop ? (1000 * n) / p.population : n / Math.max(p.area_km2, 1e-6);
    });
    var breaks = quantileBreaks(Object.keys(value).map(function (k) { return value[k]; }), cfg.ramp.length);
    function colour(v) {
      if (!(v > 0)) { return "#1f2d3d"; }
      var i = 0;
      while (i < breaks.length && v >= breaks[i]) { i++; }
      return cfg.ramp[Math.min(i + (cfg.ramp.length - breaks.length - 1), cfg.ramp.length - 1)];
    }
    L.geoJSON(grids.features, {
      pmIgnore: true,
      style: function (f) {
        return { color: "#0b1d2e", weight: 0.6, fillColor: colour(value[f.properties.code]), fillOpacity: 0.72 };
      },
      onEachFeature: function (f, layer) {
        var p = f.properties;
        layer.bindTooltip(function () {
          var s = (stats.grids || {})[p.code] || {};
          return '<div class="gm-tip"><b>' + esc(p.name) + '</b> <span class="gm-code">' + esc(p.code) + "</span>" +
            "<div>事件 " + num(s.events || 0) + " 件 · 密度 <b>" + num(value[p.code], 1) + "</b> " + unit + "</div></div>";
        }, { sticky: true, className: "gm-tooltip" });
      },
    }).addTo(group);
    if (legendHost) {
      var lo = 0;
      var rows = cfg.ramp.slice(cfg.ramp.length - breaks.length - 1).map(function (c, i) {
        var hi = breaks[i];
        var label = hi === undefined ? "≥ " + num(lo, 1) : num(lo, 1) + " – " + num(hi, 1);
        lo = hi;
        return '<div class="gm-ramp-row"><i style="background:' + c + '"></i>' + label + "</div>";
      }).join("");
      legendHost.innerHTML = '<div class="gm-legend-title">事件密度（' + unit + "）</div>" + rows;
    }
    return value;
  }

  // --- events (dispatcher) -------------------------------------------------------------

  // Markers are SVG in the gm-events pane: a canvas would cover the whole map and take
  // every click from the grids below it.
  var eventRenderer = null;

  function statusColour(cfg, status) { return (cfg.statuses[status] || ["", "#bfbfbf"])[1]; }

  function isOpen(cfg, status) { return cfg.groups.open.indexOf(status) >= 0; }

  GM.clusterIcon = function (cluster) {
    var markers = cluster.getAllChildMarkers();
    var open = 0;
    var overdue = 0;
    markers.forEach(function (m) {
      if (m.options.gmOpen) { open++; }
      if (m.options.gmOverdue) { overdue++; }
    });
    var n = markers.length;
    var tone = overdue ? "gm-cl-overdue" : open / n > 0.5 ? "gm-cl-open" : open ? "gm-cl-mixed" : "gm-cl-done";
    var size = n < 10 ? 30 : n < 100 ? 36 : n < 1000 ? 44 : 52;
    return L.divIcon({
      html: "<div><span>" + (n >= 10000 ? Math.round(n / 1000) + "k" : n) + "</span></div>",
      className: "marker-cluster gm-cluster " + tone,
      iconSize: L.point(size, size),
    });
  };

  function eventPopup(cfg, cats, f) {
    var p = f.properties;
    var c = cats[p.category] || { name: p.category, big_class_name: "" };
    var flags = (p.flags || []).map(function (x) {
      return '<span class="gm-flag gm-flag-' + esc(x) + '">' + esc(cfg.flags[x] || x) + "</span>";
    }).join(" ");
    return '<div class="gm-tip"><b>#' + esc(f.id) + " " + esc(c.name) + "</b>" +
      ' <span class="gm-muted">' + esc(c.big_class_name) + "</span>" +
      '<div>状态：<span class="gm-status" style="background:' + statusColour(cfg, p.status) + '">' +
      esc((cfg.statuses[p.status] || [p.status])[0]) + "</span> " + flags + "</div>" +
      "<div>网格：" + esc(p.grid || "未落入网格") + "</div>" +
      "<div>处置人：" + esc(p.worker || "待派遣") + "</div>" +
      '<div class="gm-muted">接收时间：' + esc(localTime(p.received_at)) + "</div></div>";
  }

  function markerStyle(cfg, f) {
    var p = f.properties;
    var overdue = (p.flags || []).indexOf("overdue") >= 0;
    return {
      renderer: eventRenderer,
      radius: overdue ? 7 : 6,
      weight: overdue ? 2.5 : 1,
      color: overdue ? "#ffffff" : "#0b1d2e",
      fillColor: statusColour(cfg, p.status),
      fillOpacity: 0.92,
      gmOpen: isOpen(cfg, p.status),
      gmOverdue: overdue,
    };
  }

  function expand(cfg, statuses) {
    var out = [];
    (statuses || []).forEach(function (s) { out = out.concat(cfg.groups[s] || [s]); });
    return out;
  }

  async function dispatcher(map, layers, cfg, me) {
    var f = cfg.filters;
    var bar = topBar(cfg, me);
    eventRenderer = L.svg({ pane: "gm-events", padding: 0.5 });
    intoPane(map, layers.hazard, "gm-heat");
    var filterQ = { window: f.window, category: f.category, status: f.status, crs: cfg.crs };
    var loaded = await Promise.all([
      api(cfg, "/maps/base", { crs: cfg.crs }),
      api(cfg, "/maps/events", filterQ),
      api(cfg, "/maps/grid-stats", filterQ),
    ]);
    var base = loaded[0];
    var snapshot = loaded[1];
    var stats = loaded[2];
    var cats = {};
    base.categories.forEach(function (c) { cats[c.code] = c; });
    bar.querySelector("[data-role=subtitle]").textContent = base.version.label;

    var windowLabel = cfg.windows[String(f.window)] || ("近" + f.window + "小时");
    var grids = drawGrids(cfg, base.grids, layers.basic, layers.community, stats, { windowLabel: windowLabel });
    if (base.bbox) {
      map.fitBounds([[base.bbox[1], base.bbox[0]], [base.bbox[3], base.bbox[2]]], { padding: [20, 20] });
    }

    // Filters panel (a GET form: the filters are the page's query parameters).
    var panel = control(map, "topleft", "gm-filters",
      '<form method="get" class="gm-form">' +
      '<div class="gm-panel-title">筛选</div>' +
      '<label>时间<select name="window">' + options(cfg.windows, f.window) + "</select></label>" +
      '<label>状态<select name="status">' + statusOptions(cfg, f.status) + "</select></label>" +
      '<label>类别<select name="category">' + categoryOptions(base.categories, f.category) + "</select></label>" +
      '<label>隐患热力<select name="hazard_window">' + options(cfg.windows, f.hazardWindow) + "</select></label>" +
      (cfg.live.mode === "poll" ? '<input type="hidden" name="live" value="poll">' : "") +
      '<button type="submit">应用</button></form><div data-role="search"></div>');
    searchBox(map, grids, panel.querySelector("[data-role=search]"), function (id) {
      return findEvent(id);
    });

    var legend = control(map, "bottomright", "gm-legend",
      '<div class="gm-legend-title">事件状态 <span class="gm-muted" data-role="total"></span></div>' +
      '<div data-role="statuses"></div>' +
      '<div class="gm-legend-note"><i class="gm-ring"></i>白色描边 = 超期</div>' +
      '<div data-role="density" class="gm-density-legend" hidden></div>' +
      '<div class="gm-legend-title">隐患热力</div><div class="gm-heat-ramp"><span>低</span><i></i><span>高</span></div>');
    var ticker = control(map, "bottomleft", "gm-ticker",
      '<div class="gm-panel-title">实时动态</div><ol data-role="feed"><li class="gm-muted">等待新事件…</li></ol>');

    var markers = {};
    GM.markers = markers;
    var wanted = {
      since: Date.now() - f.window * 3600 * 1000,
      categories: f.category || [],
      statuses: expand(cfg, f.status),
    };
    function passes(feature) {
      var p = feature.properties;
      if (!feature.geometry) { return false; }
      if (wanted.categories.length && wanted.categories.indexOf(p.category) < 0) { return false; }
      if (wanted.statuses.length && wanted.statuses.indexOf(p.status) < 0) { return false; }
      return new Date(p.received_at).getTime() >= wanted.since;
    }
    function makeMarker(feature) {
      var c = feature.geometry.coordinates;
      var m = L.circleMarker([c[1], c[0]], markerStyle(cfg, feature));
      m.feature = feature;
      m.bindPopup(function () { return eventPopup(cfg, cats, m.feature); }, { className: "gm-popup" });
      return m;
    }
    // An event by number: its marker when shown, else the API (it may be outside the filters).
    async function findEvent(id) {
      var m = markers[id];
      if (m) {
        layers.events.zoomToShowLayer(m, function () { m.openPopup(); });
        return true;
      }
      try {
        var ev = await api(cfg, "/maps/events/" + id, { crs: cfg.crs });
        if (!ev.geometry) { toast("事件 #" + id + " 没有可信坐标（见坐标存疑队列）", "warn"); return true; }
        var c = ev.geometry.coordinates;
        map.setView([c[1], c[0]], 17);
        L.popup({ className: "gm-popup" }).setLatLng([c[1], c[0]]).setContent(eventPopup(cfg, cats, ev)).openOn(map);
        return true;
      } catch (e) {
        if (e instanceof AuthNeeded) { location.reload(); }
        return false;
      }
    }
    var fresh = snapshot.features.filter(passes).map(makeMarker);
    fresh.forEach(function (m) { markers[m.feature.id] = m; });
    layers.events.addLayers(fresh);
    if (snapshot.truncated) { toast("事件过多，仅显示最近 " + num(fresh.length) + " 件；请缩小时间或类别", "warn"); }

    function updateLegend() {
      var counts = {};
      var total = 0;
      Object.keys(markers).forEach(function (id) {
        var s = markers[id].feature.properties.status;
        counts[s] = (counts[s] || 0) + 1;
        total++;
      });
      GM.state.events = total;
      legend.querySelector("[data-role=total]").textContent = num(total) + " 件";
      legend.querySelector("[data-role=statuses]").innerHTML = cfg.statusOrder.map(function (s) {
        return '<div class="gm-legend-row' + (counts[s] ? "" : " gm-dim") + '"><i style="background:' + cfg.statuses[s][1] +
          '"></i>' + esc(cfg.statuses[s][0]) + '<span class="gm-count">' + num(counts[s] || 0) + "</span></div>";
      }).join("");
    }
    updateLegend();

    // Density per grid (choropleth); its legend shows while the layer is on.
    var densityLegend = legend.querySelector("[data-role=density]");
    densityLayer(cfg, grids, stats, layers.density, densityLegend);
    map.on("overlayadd", function (e) { if (e.layer === layers.density) { densityLegend.hidden = false; } });
    map.on("overlayremove", function (e) { if (e.layer === layers.density) { densityLegend.hidden = true; } });
    var refreshStats = debounce(async function () {
      try {
        stats = await api(cfg, "/maps/grid-stats", filterQ);
        densityLayer(cfg, grids, stats, layers.density, densityLegend);
      } catch (e) { /* the next change retries */ }
    }, 5000);

    // Hazard heat: server-side bins of hazard categories over the chosen window.
    var hazardSet = {};
    base.categories.forEach(function (c) { if (c.hazard) { hazardSet[c.code] = true; } });
    var heatMax = 1;
    try {
      var heat = await api(cfg, "/maps/heat", {
        window: f.hazardWindow, step: f.hazardWindow, hazard: true, cell: 60, crs: cfg.crs,
      });
      var points = [];
      heat.frames.forEach(function (frame) { frame.forEach(function (p) { points.push(p); }); });
      heatMax = Math.max(1, heat.max);
      layers.hazard.setOptions({ max: Math.max(1, heatMax * 0.7) });
      layers.hazard.setLatLngs(points);
    } catch (e) { fail("隐患热力加载失败：" + e.message); }

    // Live updates.
    var pulses = L.layerGroup().addTo(map);
    function pulse(feature) {
      var c = feature.geometry.coordinates;
      var ring = L.marker([c[1], c[0]], {
        icon: L.divIcon({ className: "gm-pulse-icon", html: '<span class="gm-pulse"></span>', iconSize: [34, 34] }),
        pane: "gm-pulse",
        interactive: false,
        keyboard: false,
      }).addTo(pulses);
      setTimeout(function () { pulses.removeLayer(ring); }, 12000);
    }
    function feed(feature, what) {
      var list = ticker.querySelector("[data-role=feed]");
      var p = feature.properties;
      var c = cats[p.category] || { name: p.category };
      var item = el("li", {},
        '<span class="gm-time">' + clock() + "</span> " +
        '<span class="gm-status" style="background:' + statusColour(cfg, p.status) + '">' +
        esc((cfg.statuses[p.status] || [p.status])[0]) + "</span> " +
        esc(what) + " #" + esc(feature.id) + " " + esc(c.name) +
        ' <span class="gm-muted">' + esc(p.grid || "") + "</span>");
      item.addEventListener("click", function () {
        var m = markers[feature.id];
        if (m) { layers.events.zoomToShowLayer(m, function () { m.openPopup(); }); }
      });
      if (list.firstElementChild && list.firstElementChild.classList.contains("gm-muted")) { list.innerHTML = ""; }
      list.insertBefore(item, list.firstChild);
      while (list.children.length > 6) { list.removeChild(list.lastChild); }
    }
    function apply(page) {
      var added = 0;
      page.features.forEach(function (feature) {
        GM.state.changes++;
        var id = feature.id;
        var old = markers[id];
        var keep = passes(feature);
        if (old && !keep) {
          layers.events.removeLayer(old);
          delete markers[id];
        } else if (old) {
          var before = old.feature.properties.status;
          old.feature = feature;
          old.setStyle(markerStyle(cfg, feature));
          Object.assign(old.options, markerStyle(cfg, feature));
          var c = feature.geometry.coordinates;
          old.setLatLng([c[1], c[0]]);
          layers.events.refreshClusters(old);
          if (before !== feature.properties.status) { feed(feature, "状态变更"); }
        } else if (keep) {
          var m = makeMarker(feature);
          markers[id] = m;
          layers.events.addLayer(m);
          added++;
          pulse(feature);
          feed(feature, "新事件");
          if (hazardSet[feature.properties.category]) {
            var xy = feature.geometry.coordinates;
            layers.hazard.addLatLng([xy[1], xy[0], 1]);
          }
        }
      });
      if (page.features.length) {
        updateLegend();
        refreshStats();
      }
      return added;
    }

    var cursor = snapshot.cursor;
    GM.state.readyAt = Math.round(performance.now());
    GM.state.ready = true;
    document.body.setAttribute("data-gm-ready", "1");
    live(cfg, bar, function () { return cursor; }, function (page) { cursor = page.cursor; apply(page); });

    // Events age out of a sliding window.
    setInterval(function () {
      wanted.since = Date.now() - f.window * 3600 * 1000;
      var gone = [];
      Object.keys(markers).forEach(function (id) {
        if (!passes(markers[id].feature)) { gone.push(markers[id]); delete markers[id]; }
      });
      if (gone.length) { layers.events.removeLayers(gone); updateLegend(); }
    }, 60000);
  }

  // Live updates: server-sent events read with fetch (so the token goes in a header),
  // falling back to polling the feed when a proxy breaks streaming.
  function live(cfg, bar, getCursor, onPage) {
    var failures = 0;
    var mode = cfg.live.mode;

    async function poll() {
      setLive(bar, "poll", "轮询 · " + clock());
      for (;;) {
        try {
          var page = await api(cfg, "/events/changes", { since: getCursor(), crs: cfg.crs, limit: 2000 });
          onPage(page);
          setLive(bar, "poll", "轮询 · " + clock());
          if (page.more) { continue; }
        } catch (e) {
          if (e instanceof AuthNeeded) { location.reload(); return; }
          setLive(bar, "down", "连接中断 · 重试中");
        }
        await sleep(cfg.live.pollSeconds * 1000);
      }
    }

    function handle(block) {
      var event = "message";
      var data = "";
      block.split("\n").forEach(function (line) {
        if (line.indexOf("event:") === 0) { event = line.slice(6).trim(); }
        else if (line.indexOf("data:") === 0) { data += line.slice(5).trim(); }
      });
      if (!data) { return; }
      var payload = JSON.parse(data);
      if (event === "changes") { onPage(payload); }
      setLive(bar, "on", "实时 · " + clock());
    }

    async function stream() {
      for (;;) {
        try {
          var resp = await fetch(cfg.api + "/events/stream" + query({ since: getCursor(), crs: cfg.crs }), {
            headers: { Authorization: "Bearer " + token(), Accept: "text/event-stream" },
            cache: "no-store",
          });
          if (resp.status === 401) { sessionStorage.removeItem(TOKEN_KEY); location.reload(); return; }
          if (!resp.ok || !resp.body) { throw new Error("HTTP " + resp.status); }
          setLive(bar, "on", "实时 · " + clock());
          var reader = resp.body.getReader();
          var decoder = new TextDecoder();
          var buffer = "";
          for (;;) {
            var chunk = await reader.read();
            if (chunk.done) { break; }
            buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n/g, "\n");
            var cut;
            while ((cut = buffer.indexOf("\n\n")) >= 0) {
              handle(buffer.slice(0, cut));
              buffer = buffer.slice(cut + 2);
            }
          }
          failures = 0;
        } catch (e) {
          failures++;
          setLive(bar, "down", "连接中断 · 重试中");
          if (failures >= 3) { toast("实时推送不可用，改为每 " + cfg.live.pollSeconds + " 秒轮询", "warn"); return poll(); }
          await sleep(1500 * failures);
        }
      }
    }

    return mode === "poll" ? poll() : stream();
  }

  // --- heatmap page --------------------------------------------------------------------

  var STEPS = { 1: "每小时", 6: "每6小时", 24: "每天", 168: "每周" };

  async function heatmap(map, layers, cfg, me) {
    var f = cfg.filters;
    var bar = topBar(cfg, me);
    setLive(bar, "static", "统计视图");
    var q = { window: f.window, step: f.step, category: f.category, status: f.status, hazard: f.hazard || null, crs: cfg.crs };
    var loaded = await Promise.all([
      api(cfg, "/maps/base", { crs: cfg.crs }),
      api(cfg, "/maps/heat", q),
      api(cfg, "/maps/grid-stats", { window: f.window, category: f.category, status: f.status, hazard: f.hazard || null }),
    ]);
    var base = loaded[0];
    var heat = loaded[1];
    var stats = loaded[2];
    bar.querySelector("[data-role=subtitle]").textContent = base.version.label;
    var grids = drawGrids(cfg, base.grids, layers.outlines, layers.outlines, stats, {
      windowLabel: cfg.windows[String(f.window)] || "",
    });
    grids.basic.setStyle({ fillOpacity: 0, weight: 0.8, opacity: 0.6 });
    if (base.bbox) {
      map.fitBounds([[base.bbox[1], base.bbox[0]], [base.bbox[3], base.bbox[2]]], { padding: [20, 20] });
    }
    var windows = Object.assign({}, cfg.windows, { 2160: "近90天" });
    var panel = control(map, "topleft", "gm-filters",
      '<form method="get" class="gm-form"><div class="gm-panel-title">热力分析</div>' +
      '<label>时间<select name="window">' + options(windows, f.window) + "</select></label>" +
      '<label>步长<select name="step">' + options(STEPS, f.step) + "</select></label>" +
      '<label>类别<select name="category">' + categoryOptions(base.categories, f.category) + "</select></label>" +
      '<label>状态<select name="status">' + statusOptions(cfg, f.status) + "</select></label>" +
      '<button type="submit">应用</button></form>' +
      '<div class="gm-summary" data-role="summary"></div><div data-role="search"></div>');
    searchBox(map, grids, panel.querySelector("[data-role=search]"));
    var legend = control(map, "bottomright", "gm-legend",
      '<div data-role="density" class="gm-density-legend" hidden></div><div class="gm-legend-title">热力</div>' +
      '<div class="gm-heat-ramp"><span>低</span><i></i><span>高</span></div>');
    var densityLegend = legend.querySelector("[data-role=density]");
    densityLayer(cfg, grids, stats, layers.density, densityLegend);
    map.on("overlayadd", function (e) { if (e.layer === layers.density) { densityLegend.hidden = false; } });
    map.on("overlayremove", function (e) { if (e.layer === layers.density) { densityLegend.hidden = true; } });

    // Frames: weights scaled by the square root of count/max, so quiet areas stay visible.
    var peak = Math.max(1, heat.max);
    var frames = heat.frames.map(function (frame) {
      return frame.map(function (p) { return [p[0], p[1], Math.sqrt(p[2] / peak)]; });
    });
    var totals = heat.frames.map(function (frame) {
      return frame.reduce(function (s, p) { return s + p[2]; }, 0);
    });
    var animated = layers.animated;
    var timeControl = window[cfg.animatedControl];
    animated.data = frames.length ? frames : [[]];
    if (timeControl) { timeControl.index = heat.labels.length ? heat.labels : ["—"]; }
    var times = animated.data.map(function (_, i) { return i + 1; });
    map.timeDimension.setAvailableTimes(times, "replace");
    map.timeDimension.setCurrentTime(times[times.length - 1]);

    var summary = panel.querySelector("[data-role=summary]");
    var top = Math.max(1, Math.max.apply(null, totals.concat([1])));
    summary.innerHTML =
      "<div>共 <b>" + num(heat.total) + "</b> 件 · " + (heat.binned ? "按约 " + heat.cell_m + " m 网格聚合" : "原始点位") + "</div>" +
      '<svg class="gm-bars" viewBox="0 0 ' + totals.length * 6 + ' 40" preserveAspectRatio="none">' +
      totals.map(function (t, i) {
        var h = Math.max(1, (38 * t) / top);
        return '<rect data-i="' + i + '" x="' + (i * 6 + 0.5) + '" y="' + (40 - h) + '" width="5" height="' + h + '"></rect>';
      }).join("") + "</svg>" +
      '<div class="gm-muted" data-role="frame"></div>';
    function mark() {
      var t = map.timeDimension.getCurrentTime();
      var i = t - 1;
      summary.querySelectorAll("rect").forEach(function (r) { r.classList.toggle("gm-on", Number(r.dataset.i) === i); });
      summary.querySelector("[data-role=frame]").textContent =
        (heat.labels[i] || "") + "：" + num(totals[i] || 0) + " 件";
    }
    map.timeDimension.on("timeload", mark);
    mark();
    GM.state.events = heat.total;
    GM.state.readyAt = Math.round(performance.now());
    GM.state.ready = true;
    document.body.setAttribute("data-gm-ready", "1");
  }

  // --- entry point ---------------------------------------------------------------------

  // Pages in their own files (planner.js) register here; they load after this file.
  var PAGES = { dispatcher: dispatcher, heatmap: heatmap };
  GM.pages = PAGES;
  // The helpers other page scripts share.
  GM.util = {
    esc: esc, el: el, num: num, clock: clock, localTime: localTime, sleep: sleep, debounce: debounce,
    query: query, fail: fail, api: api, AuthNeeded: AuthNeeded, toast: toast, topBar: topBar,
    setLive: setLive, control: control, workersText: workersText, GRID_STYLE: GRID_STYLE,
  };

  GM.start = function (kind, map, layers, cfg) {
    GM.state.kind = kind;
    GM.map = map;
    GM.layers = layers;
    createPanes(map);
    document.body.classList.add("gm-page", "gm-tiles-" + cfg.tiles);
    (async function () {
      try {
        var me = await signedIn(cfg);
        await PAGES[kind](map, layers, cfg, me);
      } catch (e) {
        if (e instanceof AuthNeeded) { location.reload(); return; }
        fail("加载失败：" + (e && e.message ? e.message : e));
      }
    })();
  };

  window.GridMap = GM;
})();
