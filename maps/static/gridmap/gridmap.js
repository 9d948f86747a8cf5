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
  var GM = { state: { ready: false, kind: null, events: 0, grids: 0, changes: 0, live: "off", errors: [], marks: {} } };
  // Milestones of the page's load, ms from navigation start (the benchmark prints them).
  function mark(name) { GM.state.marks[name] = Math.round(performance.now()); }

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
    // Problem messages come back in Chinese (api/messages.py).
    var headers = Object.assign({ Accept: "application/json", "Accept-Language": "zh-CN" }, opts.headers || {});
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
            headers: { "Content-Type": "application/x-www-form-urlencoded", "Accept-Language": "zh-CN" },
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

  // Phones (the desk's bottom sheet, see gridmap.css): the layer list folds into its
  // button, so it does not cover half the map.
  var PHONE = window.matchMedia("(max-width: 700px)");
  function collapseOnPhone(map, control) {
    if (!control || !control.collapse) { return; }
    control.options.collapsed = true;
    control.collapse();
    map.on("click", control.collapse, control);
  }

  // The dispatcher's first requests, all at once; sent before /auth/me has answered when
  // the tab already holds a token (GM.start), so the map does not wait for two round trips.
  function dispatcherRequests(cfg) {
    var f = cfg.filters;
    var filterQ = { window: f.window, category: f.category, status: f.status };
    var got = {
      base: api(cfg, "/maps/base", { crs: cfg.crs }),
      events: api(cfg, "/maps/events", Object.assign({ crs: cfg.crs }, filterQ)),
      stats: api(cfg, "/maps/grid-stats", filterQ),
      heat: api(cfg, "/maps/heat", {
        window: f.hazardWindow, step: f.hazardWindow, hazard: true, cell: 60, crs: cfg.crs,
      }),
    };
    // Handled here too: a request that fails before it is awaited is no unhandled rejection.
    Object.keys(got).forEach(function (k) { got[k].catch(function () {}); });
    return got;
  }

  async function dispatcher(map, layers, cfg, me, early) {
    var f = cfg.filters;
    var bar = topBar(cfg, me);
    if (PHONE.matches) { collapseOnPhone(map, layers.control); }
    eventRenderer = L.svg({ pane: "gm-events", padding: 0.5 });
    intoPane(map, layers.hazard, "gm-heat");
    var filterQ = { window: f.window, category: f.category, status: f.status };
    var req = early || dispatcherRequests(cfg);
    var loaded = await Promise.all([req.base, req.events, req.stats]);
    mark("data");
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
    mark("grids");

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
      '<div class="gm-legend-title">聚合（数字 = 件数）</div>' +
      '<div class="gm-legend-cl"><i style="background:#f5f8fb"></i>多为未办结 <i style="background:#a9bccf"></i>混合 ' +
      '<i style="background:#4a5f74"></i>多为已办结</div>' +
      '<div class="gm-legend-cl"><i style="background:#f5f8fb;box-shadow:0 0 0 3px #a8071a"></i>红圈 = 含超期</div>' +
      '<div data-role="density" class="gm-density-legend" hidden></div>' +
      heatLegendHtml(cfg, cfg.hazardScale, "隐患事件数（" + (cfg.windows[String(f.hazardWindow)] || "近" + f.hazardWindow + "小时") + "）"));
    var ticker = control(map, "bottomleft", "gm-ticker",
      '<div class="gm-panel-title">实时动态 <span class="gm-muted" data-role="paused"></span></div>' +
      '<ol data-role="feed"><li class="gm-muted">等待新事件…</li></ol>');
    L.DomEvent.disableScrollPropagation(ticker);

    var markers = {};
    GM.markers = markers;
    var locate = function (id) { return findEvent(id, true); };
    var side = desk(map, layers, cfg, me, { cats: cats, locate: locate, optional: base.optional });
    mark("desk");
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
    // The popup is bound on first use: thousands of Popup objects made up front cost more
    // than drawing the markers. openPopup() works as on any marker (tests and search use it).
    var EventMarker = L.CircleMarker.extend({
      openPopup: function (latlng) {
        if (!this._popup) {
          var self = this;
          this.bindPopup(function () { return eventPopup(cfg, cats, self.feature); }, { className: "gm-popup" });
        }
        return L.CircleMarker.prototype.openPopup.call(this, latlng);
      },
    });
    function makeMarker(feature) {
      var c = feature.geometry.coordinates;
      var m = new EventMarker([c[1], c[0]], markerStyle(cfg, feature));
      m.feature = feature;
      m.on("click", function () {
        if (!m.getPopup()) { m.openPopup(); }
        side.openEvent(m.feature.id);
      });
      return m;
    }
    // An event by number: its marker when shown, else the API (it may be outside the filters).
    async function findEvent(id, quiet) {
      if (!quiet) { side.openEvent(id); }
      var m = markers[id];
      if (m) {
        layers.events.zoomToShowLayer(m, function () { m.openPopup(); });
        return true;
      }
      try {
        var ev = await api(cfg, "/maps/events/" + id, { crs: cfg.crs });
        if (!ev.geometry) {
          if (!quiet) { toast("事件 #" + id + " 没有可信坐标（见坐标存疑队列）", "warn"); }
          return true;
        }
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
    // chunkedLoading clusters in slices between frames; the page counts as drawn (ready)
    // only once the last slice is in.
    var clustered = new Promise(function (resolve) {
      layers.events.options.chunkProgress = function (done, total) {
        if (done >= total) {
          layers.events.options.chunkProgress = null;
          mark("clustered");
          resolve();
        }
      };
    });
    layers.events.addLayers(fresh);
    mark("markers");
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
    try {
      var heat = await req.heat;
      var points = [];
      heat.frames.forEach(function (frame) { frame.forEach(function (p) { points.push(p); }); });
      // A fixed scale per hazard window (maps/styles.py HAZARD_HEAT_SCALE), not the data's max.
      layers.hazard.setOptions({ max: cfg.hazardScale.max });
      layers.hazard.setLatLngs(points);
    } catch (e) { fail("隐患热力加载失败：" + e.message); }
    mark("heat");

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
      item.setAttribute("data-id", feature.id);
      item.addEventListener("click", function () {
        side.openEvent(feature.id);
        var m = markers[feature.id];
        if (m) { layers.events.zoomToShowLayer(m, function () { m.openPopup(); }); }
      });
      tickerQueue.push(item);
      if (!tickerHovered) { flushTicker(); } else {
        ticker.querySelector("[data-role=paused]").textContent = "已暂停 · " + tickerQueue.length + " 条新动态";
      }
    }
    // The ticker keeps the last TICKER_KEEP items, scrollable; while the mouse is over it
    // nothing moves (new items wait), so the item under the mouse can be clicked.
    var TICKER_KEEP = 50;
    var tickerQueue = [];
    var tickerHovered = false;
    function flushTicker() {
      var list = ticker.querySelector("[data-role=feed]");
      if (list.firstElementChild && list.firstElementChild.classList.contains("gm-muted")) { list.innerHTML = ""; }
      tickerQueue.forEach(function (item) { list.insertBefore(item, list.firstChild); });
      tickerQueue = [];
      while (list.children.length > TICKER_KEEP) { list.removeChild(list.lastChild); }
      ticker.querySelector("[data-role=paused]").textContent = "";
      GM.state.ticker = list.children.length;
    }
    ticker.addEventListener("mouseenter", function () { tickerHovered = true; });
    ticker.addEventListener("mouseleave", function () { tickerHovered = false; flushTicker(); });
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
          side.alarm(feature);
          if (hazardSet[feature.properties.category]) {
            var xy = feature.geometry.coordinates;
            layers.hazard.addLatLng([xy[1], xy[0], 1]);
          }
        }
      });
      if (page.features.length) {
        updateLegend();
        refreshStats();
        side.changed(page.features);
      }
      return added;
    }

    // Workers where their tablets last reported them (24 h), green when on duty now.
    var crew = L.layerGroup();
    layers.control.addOverlay(crew, "网格员位置");
    GM.layers.crew = crew;
    async function refreshCrew() {
      try {
        var got = await Promise.all([api(cfg, "/workers/positions"), api(cfg, "/workers")]);
        var duty = {};
        got[1].items.forEach(function (w) { duty[w.worker_no] = w; });
        crew.clearLayers();
        got[0].items.forEach(function (p) {
          var w = duty[p.worker_no] || {};
          L.marker([p.lat, p.lon], {
            pane: "gm-events",
            icon: L.divIcon({
              className: "gm-crew" + (w.on_duty_now ? " gm-crew-on" : ""),
              html: "<span>" + esc(p.name) + "</span>",
              iconSize: null,
            }),
          }).bindTooltip(esc(p.name) + " " + esc(p.worker_no) + " · " + (w.on_duty_now ? "在岗" : "不在岗") +
            " · " + num(w.open_tasks) + " 件在办<br>位置更新于 " + esc(localTime(p.at)), { className: "gm-tooltip" }).addTo(crew);
        });
        GM.state.crew = got[0].count;
      } catch (e) {
        if (e instanceof AuthNeeded) { location.reload(); }
      }
    }
    map.on("overlayadd", function (e) { if (e.layer === crew) { refreshCrew(); } });
    setInterval(function () { if (map.hasLayer(crew)) { refreshCrew(); } }, 30000);

    var cursor = snapshot.cursor;
    await clustered;
    GM.state.readyAt = Math.round(performance.now());
    GM.state.ready = true;
    document.body.setAttribute("data-gm-ready", "1");
    side.start();
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

  // --- dispatcher's desk: event panel, queues, warnings --------------------------------
  //
  // A side panel beside the map. Its top lists the dispatcher's queues with live counts
  // (GET /queues/{name}); below, either one queue's events or one event with its history
  // and exactly the actions the API says this user may take now (allowed_actions).

  var QUEUES = [
    ["dispatcher", "待派遣"], ["quarantine", "坐标存疑"], ["unrouted", "未落入网格"],
    ["near_boundary", "近边界待确认"], ["overdue", "超期"], ["due_soon", "即将超期"],
    ["returned", "退回"], ["postponement_requests", "延期申请"], ["verification", "待核查"],
  ];
  var ACTION_LABELS = {
    register: "立案", void: "作废", dispatch: "派遣", reassign: "改派", claim: "认领",
    "return": "退回", request_postponement: "申请延期", approve_postponement: "批准延期",
    deny_postponement: "驳回延期", handle: "处置", verify: "核查", close: "结案", evaluate: "评价",
    report: "上报", reroute: "重新落格",
  };
  var VOID_REASONS = { invalid: "无效上报", duplicate: "重复上报", out_of_scope: "不属于受理范围" };
  var SOUND_KEY = "gridmap.sound";

  function countdown(iso) {
    if (!iso) { return "—"; }
    var ms = new Date(iso).getTime() - Date.now();
    var late = ms < 0;
    var s = Math.floor(Math.abs(ms) / 1000);
    var d = Math.floor(s / 86400);
    var h = Math.floor((s % 86400) / 3600);
    var m = Math.floor((s % 3600) / 60);
    var text = (d ? d + "天" : "") + (d || h ? h + "时" : "") + m + "分" + (d ? "" : (s % 60) + "秒");
    return late ? "已超期 " + text : "剩余 " + text;
  }

  function beep() {
    try {
      var Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) { return; }
      var ctx = beep.ctx || (beep.ctx = new Ctx());
      [0, 0.25].forEach(function (t) {
        var osc = ctx.createOscillator();
        var gain = ctx.createGain();
        osc.frequency.value = 880;
        gain.gain.setValueAtTime(0.15, ctx.currentTime + t);
        gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + t + 0.2);
        osc.connect(gain).connect(ctx.destination);
        osc.start(ctx.currentTime + t);
        osc.stop(ctx.currentTime + t + 0.2);
      });
    } catch (e) { /* no audio: the flash still shows */ }
  }

  // ISO week of a local date, as the assessment API names periods (week:YYYY-Www).
  function isoWeek(date) {
    var d = new Date(Date.UTC(date.getFullYear(), date.getMonth(), date.getDate()));
    var day = d.getUTCDay() || 7;
    d.setUTCDate(d.getUTCDate() + 4 - day);
    var year = d.getUTCFullYear();
    var week = Math.ceil(((d - Date.UTC(year, 0, 1)) / 86400000 + 1) / 7);
    return year + "-W" + (week < 10 ? "0" : "") + week;
  }

  // A sparkline of daily values: one polyline per series, scaled to the largest value shown.
  function sparkline(days, series) {
    var w = 150;
    var h = 34;
    var max = 1;
    days.forEach(function (d) { series.forEach(function (s) { max = Math.max(max, d[s[0]] || 0); }); });
    var step = days.length > 1 ? w / (days.length - 1) : w;
    return '<svg class="gm-spark" viewBox="0 0 ' + w + " " + (h + 2) + '" width="' + w + '" height="' + (h + 2) + '">' +
      series.map(function (s) {
        var pts = days.map(function (d, i) {
          return (i * step).toFixed(1) + "," + (h + 1 - (d[s[0]] || 0) / max * h).toFixed(1);
        }).join(" ");
        return '<polyline fill="none" stroke="' + s[1] + '" stroke-width="1.5" points="' + pts + '"/>';
      }).join("") + "<title>最大 " + max + "</title></svg>";
  }

  // Statistics: today's figures and 7/30-day trends from /maps/daily; the week's top
  // communities, grids and workers from the assessment API ("—" while it answers 404).
  async function statistics(cfg, host, workerName, roster, optional) {
    var html = "";
    try {
      var daily = (await api(cfg, "/maps/daily", { days: 30 })).days;
      var today = daily[daily.length - 1];
      var week = daily.slice(-7);
      var sum = function (rows, k) { return rows.reduce(function (s, d) { return s + d[k]; }, 0); };
      var rate = function (rows) {
        var handled = sum(rows, "handled");
        return handled ? num(100 * sum(rows, "handled_on_time") / handled, 1) + "%" : "—";
      };
      html += '<div class="gm-today" data-role="today">今日 上报 <b>' + num(today.reported) + "</b> 立案 <b>" + num(today.registered) +
        "</b> 结案 <b>" + num(today.closed) + "</b> 按时率 <b>" + rate([today]) + "</b></div>" +
        '<div class="gm-trends"><div>近 7 天（按时率 ' + rate(week) + "）" + sparkline(week, [["reported", "#ffa940"], ["closed", "#4096ff"]]) + "</div>" +
        "<div>近 30 天（按时率 " + rate(daily) + "）" + sparkline(daily, [["reported", "#ffa940"], ["closed", "#4096ff"]]) + "</div></div>" +
        '<div class="gm-muted gm-spark-key"><i style="background:#ffa940"></i>上报 <i style="background:#4096ff"></i>结案</div>';
      GM.state.daily = today;
    } catch (e) {
      if (e instanceof AuthNeeded) { location.reload(); return; }
      html += '<div class="gm-muted">今日统计不可用</div>';
    }
    var period = "week:" + isoWeek(new Date());
    var tops = { communities: "—", grids: "—", workers: "—" };
    try {
      if (!optional.assessment) { throw new Error("no assessment API"); }
      var doc = await api(cfg, "/assessment", { period: period });
      await roster();
      var best = function (rows, key) {
        return (rows || []).slice().sort(function (a, b) { return (b.closed - a.closed) || (a[key] < b[key] ? -1 : 1); })
          .slice(0, 3).map(function (r) { return esc(r[key]) + "（" + num(r.closed) + "）"; }).join("、") || "—";
      };
      tops.communities = best(doc.communities, "community_code");
      tops.grids = best(doc.grids, "grid_code");
      tops.workers = (doc.top_workers || []).slice(0, 3).map(function (w) { return esc(workerName(w)); }).join("、") || "—";
    } catch (e) {
      if (e instanceof AuthNeeded) { location.reload(); return; }
    }
    html += '<div class="gm-tops" data-role="tops"><div>本周社区（结案）：' + tops.communities + "</div><div>本周网格（结案）：" +
      tops.grids + "</div><div>本周网格员：" + tops.workers + "</div></div>";
    host.classList.remove("gm-muted");
    host.innerHTML = html;
    GM.state.statsAt = Date.now();
  }

  // --- the event list: instant filters over the loaded events, sortable, CSV export -------
  //
  // Filters run in the browser over the map's events (the page's window); a from/to outside
  // that window, or a queue, asks the API (/maps/events with from/to, /queues/{name}).
  var LIST_COLUMNS = [
    ["id", "编号"], ["received_at", "上报时间"], ["category", "类别"], ["status", "状态"],
    ["grid", "网格"], ["worker", "处置人"], ["flags", "标记"],
  ];

  function eventList(cfg, host, ctx, openEvent) {
    var cats = ctx.cats;
    var state = { sort: "received_at", desc: true, extra: null, queueIds: null };
    var flagOptions = Object.keys(cfg.flags).map(function (k) {
      return '<option value="' + esc(k) + '">' + esc(cfg.flags[k]) + "</option>";
    }).join("");
    host.innerHTML =
      '<div class="gm-panel-title">事件列表 <span class="gm-muted" data-role="shown"></span></div>' +
      '<form class="gm-list-filters" data-role="filters">' +
      '<label>从<input type="datetime-local" name="from"></label><label>到<input type="datetime-local" name="to"></label>' +
      '<select name="category"><option value="">全部类别</option>' + Object.keys(cats).sort().map(function (c) {
        return '<option value="' + esc(c) + '">' + esc(cats[c].name) + "</option>";
      }).join("") + "</select>" +
      '<select name="status"><option value="">全部状态</option>' + cfg.statusOrder.map(function (s) {
        return '<option value="' + esc(s) + '">' + esc(cfg.statuses[s][0]) + "</option>";
      }).join("") + "</select>" +
      '<select name="queue"><option value="">全部队列</option>' + QUEUES.map(function (q) {
        return '<option value="' + q[0] + '">' + esc(q[1]) + "</option>";
      }).join("") + "</select>" +
      '<select name="flag"><option value="">全部标记</option>' + flagOptions + "</select>" +
      '<input name="community" placeholder="社区编码" maxlength="32">' +
      '<input name="grid" placeholder="网格编码" maxlength="32">' +
      '<input name="worker" placeholder="网格员编号" maxlength="32">' +
      '<input name="number" placeholder="事件编号" inputmode="numeric" maxlength="12">' +
      '<button type="button" data-role="csv">导出 CSV</button></form>' +
      '<table class="gm-table"><thead><tr>' + LIST_COLUMNS.map(function (c) {
        return '<th data-sort="' + c[0] + '">' + esc(c[1]) + "</th>";
      }).join("") + '</tr></thead><tbody data-role="rows"></tbody></table>';
    var form = host.querySelector("[data-role=filters]");
    var rowsHost = host.querySelector("[data-role=rows]");
    var shown = [];

    function source() {
      var out = {};
      Object.keys(GM.markers).forEach(function (id) { out[id] = GM.markers[id].feature; });
      (state.extra || []).forEach(function (f) { out[f.id] = f; });
      return Object.keys(out).map(function (id) { return out[id]; });
    }
    function value(f, key) {
      var p = f.properties;
      if (key === "id") { return f.id; }
      if (key === "category") { return (cats[p.category] || { name: p.category }).name; }
      if (key === "status") { return (cfg.statuses[p.status] || [p.status])[0]; }
      if (key === "flags") { return (p.flags || []).map(function (x) { return cfg.flags[x] || x; }).join(" "); }
      return p[key] || "";
    }
    function render() {
      var v = {};
      ["from", "to", "category", "status", "queue", "flag", "community", "grid", "worker", "number"].forEach(function (k) {
        v[k] = form[k].value.trim();
      });
      var from = v.from ? new Date(v.from).getTime() : null;
      var to = v.to ? new Date(v.to).getTime() : null;
      shown = source().filter(function (f) {
        var p = f.properties;
        var at = new Date(p.received_at).getTime();
        if (from !== null && at < from) { return false; }
        if (to !== null && at >= to) { return false; }
        if (v.category && p.category !== v.category) { return false; }
        if (v.status && p.status !== v.status) { return false; }
        if (v.flag && (p.flags || []).indexOf(v.flag) < 0) { return false; }
        if (v.community && (p.grid || "").indexOf(v.community) !== 0) { return false; }
        if (v.grid && (p.grid || "").indexOf(v.grid) !== 0) { return false; }
        if (v.worker && (p.worker || "") !== v.worker) { return false; }
        if (v.number && String(f.id).indexOf(v.number.replace(/^#/, "")) !== 0) { return false; }
        if (v.queue && state.queueIds && !state.queueIds[f.id]) { return false; }
        return true;
      });
      var key = state.sort;
      shown.sort(function (a, b) {
        var x = key === "id" ? a.id : String(value(a, key));
        var y = key === "id" ? b.id : String(value(b, key));
        var c = x < y ? -1 : x > y ? 1 : a.id - b.id;
        return state.desc ? -c : c;
      });
      host.querySelectorAll("th").forEach(function (th) {
        th.classList.toggle("gm-sorted", th.getAttribute("data-sort") === key);
        th.classList.toggle("gm-desc", th.getAttribute("data-sort") === key && state.desc);
      });
      var limit = 500;
      rowsHost.innerHTML = shown.slice(0, limit).map(function (f) {
        return '<tr data-id="' + esc(f.id) + '">' + LIST_COLUMNS.map(function (c) {
          var text = c[0] === "received_at" ? localTime(f.properties.received_at) : value(f, c[0]);
          return "<td>" + esc(c[0] === "id" ? "#" + text : text) + "</td>";
        }).join("") + "</tr>";
      }).join("");
      host.querySelector("[data-role=shown]").textContent = num(shown.length) + " 件" + (shown.length > limit ? "（列出前 " + limit + " 件，导出全部）" : "");
      GM.state.listed = shown.length;
    }
    var again = debounce(render, 150);
    form.addEventListener("input", again);
    form.addEventListener("change", async function (e) {
      var name = e.target.name;
      if (name === "queue") {
        state.queueIds = null;
        if (form.queue.value) {
          var page = await api(cfg, "/queues/" + form.queue.value, { limit: 500 });
          state.queueIds = {};
          page.items.forEach(function (ev) { state.queueIds[ev.id] = true; });
        }
      }
      if (name === "from" || name === "to") {
        // Outside the map's window: ask the API for that range.
        var since = new Date(Date.now() - cfg.filters.window * 3600 * 1000);
        var from = form.from.value ? new Date(form.from.value) : null;
        state.extra = null;
        if (from && from < since) {
          var params = { from: from.toISOString(), crs: cfg.crs, limit: 20000 };
          if (form.to.value) { params.to = new Date(form.to.value).toISOString(); }
          try { state.extra = (await api(cfg, "/maps/events", params)).features; } catch (err) { toast(err.message, "error"); }
        }
      }
      render();
    });
    host.querySelectorAll("th").forEach(function (th) {
      th.addEventListener("click", function () {
        var key = th.getAttribute("data-sort");
        state.desc = state.sort === key ? !state.desc : false;
        state.sort = key;
        render();
      });
    });
    rowsHost.addEventListener("click", function (e) {
      var tr = e.target.closest("tr[data-id]");
      if (!tr) { return; }
      var id = Number(tr.getAttribute("data-id"));
      if (ctx.locate) { ctx.locate(id); }
      openEvent(id);
    });
    host.querySelector("[data-role=csv]").addEventListener("click", function () {
      var cell = function (x) {
        var s = String(x === null || x === undefined ? "" : x);
        if (/^[=+\-@\t\r]/.test(s)) { s = "'" + s; }  // no formulas in a spreadsheet
        return '"' + s.replace(/"/g, '""') + '"';
      };
      var lines = [["id", "received_at", "category", "category_name", "status", "grid_code", "worker_no", "flags"].join(",")];
      shown.forEach(function (f) {
        var p = f.properties;
        lines.push([f.id, p.received_at, p.category, value(f, "category"), p.status, p.grid || "", p.worker || "",
          (p.flags || []).join(" ")].map(cell).join(","));
      });
      var blob = new Blob(["\ufeff" + lines.join("\r\n") + "\r\n"], { type: "text/csv;charset=utf-8" });
      var a = el("a", { href: URL.createObjectURL(blob), download: "events-" + new Date().toISOString().slice(0, 10) + ".csv" });
      document.body.appendChild(a);
      a.click();
      a.remove();
      GM.state.csvRows = shown.length;
    });
    render();
  }

  function desk(map, layers, cfg, me, ctx) {
    var side = el("aside", { class: "gm-side", "data-role": "side" },
      '<div class="gm-side-head"><span class="gm-panel-title">工作队列</span>' +
      '<button type="button" data-role="list">事件列表</button>' +
      '<label class="gm-sound"><input type="checkbox" data-role="sound"> 隐患声音提醒</label>' +
      '<button type="button" data-role="collapse" title="收起/展开">⇔</button></div>' +
      '<div class="gm-queues" data-role="queues">' + QUEUES.map(function (q) {
        return '<button type="button" class="gm-queue gm-queue-' + q[0] + '" data-queue="' + q[0] + '">' +
          '<span class="gm-queue-name">' + esc(q[1]) + '</span><b data-role="count">…</b></button>';
      }).join("") + "</div>" +
      '<details class="gm-stats" data-role="stats"' + (PHONE.matches ? "" : " open") + '><summary class="gm-panel-title">统计</summary>' +
      '<div data-role="stats-body" class="gm-muted">加载中…</div></details>' +
      '<div class="gm-side-body" data-role="body"><p class="gm-muted">点击事件标记、队列或实时动态查看详情</p></div>');
    document.body.appendChild(side);
    document.body.classList.add("gm-has-side");
    map.invalidateSize();
    side.querySelector("[data-role=collapse]").addEventListener("click", function () {
      document.body.classList.toggle("gm-side-collapsed");
      map.invalidateSize();
    });
    var body = side.querySelector("[data-role=body]");
    // On a phone the whole sheet scrolls: bring what was just opened into view.
    function reveal() {
      if (PHONE.matches) { side.scrollTop = body.offsetTop - side.firstElementChild.offsetHeight; }
    }

    // Warnings that cannot be missed: red and yellow cards over the map.
    var cards = el("div", { class: "gm-cards", "data-role": "cards" },
      '<button type="button" class="gm-card gm-card-red" data-queue="overdue" hidden>超期 <b>0</b> 件</button>' +
      '<button type="button" class="gm-card gm-card-yellow" data-queue="due_soon" hidden>即将超期 <b>0</b> 件</button>');
    map.getContainer().appendChild(cards);
    L.DomEvent.disableClickPropagation(cards);
    var sound = side.querySelector("[data-role=sound]");
    sound.checked = localStorage.getItem(SOUND_KEY) !== "off";
    sound.addEventListener("change", function () { localStorage.setItem(SOUND_KEY, sound.checked ? "on" : "off"); });

    var counts = {};
    GM.state.queues = counts;
    async function refreshCounts() {
      await Promise.all(QUEUES.map(async function (q) {
        try {
          var page = await api(cfg, "/queues/" + q[0], { limit: 1 });
          counts[q[0]] = page.count;
        } catch (e) {
          if (e instanceof AuthNeeded) { location.reload(); }
        }
      }));
      QUEUES.forEach(function (q) {
        var button = side.querySelector("[data-queue=" + q[0] + "]");
        var n = counts[q[0]];
        button.querySelector("[data-role=count]").textContent = n === undefined ? "—" : num(n);
        button.classList.toggle("gm-queue-empty", !n);
      });
      [["overdue", ".gm-card-red"], ["due_soon", ".gm-card-yellow"]].forEach(function (pair) {
        var card = cards.querySelector(pair[1]);
        card.hidden = !counts[pair[0]];
        card.querySelector("b").textContent = num(counts[pair[0]] || 0);
      });
      GM.state.queuesAt = Date.now();
    }
    var countsSoon = debounce(refreshCounts, 2000);

    function showQueue(name) {
      var label = QUEUES.filter(function (q) { return q[0] === name; })[0][1];
      side.querySelectorAll(".gm-queue").forEach(function (b) { b.classList.toggle("gm-on", b.getAttribute("data-queue") === name); });
      body.innerHTML = '<div class="gm-panel-title">' + esc(label) + ' <span class="gm-muted" data-role="qcount"></span></div><p class="gm-muted">加载中…</p>';
      api(cfg, "/queues/" + name, { limit: 200 }).then(function (page) {
        if (!body.querySelector("[data-role=qcount]")) { return; }
        body.innerHTML = '<div class="gm-panel-title">' + esc(label) + ' <span class="gm-muted">' + num(page.count) + " 件" +
          (page.count > page.items.length ? "（显示前 " + page.items.length + " 件）" : "") + "</span></div>" +
          '<ol class="gm-qlist" data-role="qlist">' + (page.items.length ? page.items.map(function (ev) {
            var c = ctx.cats[ev.category] || { name: ev.category };
            return '<li data-id="' + esc(ev.id) + '" class="' + (ev.overdue ? "gm-late" : "") + '"><b>#' + esc(ev.id) + "</b> " + esc(c.name) +
              ' <span class="gm-muted">' + esc(ev.grid_code || (ev.lon === null ? "无坐标" : "未落入网格")) + "</span>" +
              '<span class="gm-due" data-due="' + esc(ev.due_at || "") + '"></span></li>';
          }).join("") : '<li class="gm-muted">队列为空</li>') + "</ol>";
        tick();
        reveal();
        body.querySelectorAll("[data-id]").forEach(function (row) {
          row.addEventListener("click", function () {
            var id = Number(row.getAttribute("data-id"));
            var ev = page.items.filter(function (x) { return x.id === id; })[0];
            if (ev && ev.lon !== null && ctx.locate) { ctx.locate(id); }
            openEvent(id);
          });
        });
      }).catch(function (e) { body.innerHTML = '<p class="gm-error">' + esc(e.message) + "</p>"; });
    }
    side.querySelectorAll(".gm-queue").forEach(function (b) {
      b.addEventListener("click", function () { showQueue(b.getAttribute("data-queue")); });
    });
    cards.querySelectorAll(".gm-card").forEach(function (b) {
      b.addEventListener("click", function () {
        document.body.classList.remove("gm-side-collapsed");
        showQueue(b.getAttribute("data-queue"));
      });
    });

    var workers = null;
    async function roster() {
      try {
        workers = (await api(cfg, "/workers")).items;
      } catch (e) { workers = workers || []; }
      return workers;
    }
    function workerName(no) {
      var w = (workers || []).filter(function (x) { return x.worker_no === no; })[0];
      return w ? w.name + "（" + no + "）" : no || "—";
    }
    function workerPicker(ev, required) {
      var list = (workers || []).filter(function (w) { return w.active; }).slice().sort(function (a, b) {
        var ha = a.grids.some(function (g) { return g.code === ev.grid_code; }) ? 0 : 1;
        var hb = b.grids.some(function (g) { return g.code === ev.grid_code; }) ? 0 : 1;
        return (b.on_duty_now - a.on_duty_now) || (ha - hb) || (a.open_tasks - b.open_tasks) || (a.worker_no < b.worker_no ? -1 : 1);
      });
      return '<select name="worker_no"' + (required ? " required" : "") + ">" +
        (required ? '<option value="">选择网格员…</option>' : '<option value="">按网格规则派遣</option>') +
        list.map(function (w) {
          var here = w.grids.some(function (g) { return g.code === ev.grid_code; });
          return '<option value="' + esc(w.worker_no) + '"' + (w.worker_no === ev.worker_no ? " disabled" : "") + ">" +
            (here ? "★ " : "") + esc(w.name) + " " + esc(w.worker_no) + " · " + (w.on_duty_now ? "在岗" : "不在岗") +
            " · " + num(w.open_tasks) + " 件在办</option>";
        }).join("") + "</select>";
    }

    var current = null;
    var placing = null; // the id of the event being placed by the next map click
    var placed = null; // {id, spot}: the point clicked for that event
    async function openEvent(id) {
      document.body.classList.remove("gm-side-collapsed");
      if (id !== current) { stopPlacing(); clearPlaced(); }
      current = id;
      side.querySelectorAll(".gm-queue").forEach(function (b) { b.classList.remove("gm-on"); });
      body.innerHTML = '<p class="gm-muted">加载事件 #' + esc(id) + "…</p>";
      try {
        var got = await Promise.all([api(cfg, "/events/" + id), api(cfg, "/events/" + id + "/history"), workers ? workers : roster()]);
      } catch (e) {
        if (e instanceof AuthNeeded) { location.reload(); return; }
        if (current === id) { body.innerHTML = '<p class="gm-error">' + esc(e.message) + "</p>"; }
        return;
      }
      if (current !== id) { return; }
      renderEvent(got[0], got[1]);
    }
    GM.openEvent = openEvent;

    function renderEvent(ev, history) {
      var c = ctx.cats[ev.category] || { name: ev.category, big_class_name: "" };
      var basic = (ev.grids || []).filter(function (g) { return g.level === "basic"; })[0];
      var flags = [];
      if (ev.overdue) { flags.push("overdue"); }
      if (ev.routing_flag && ev.routing_flag !== "inside" && ev.routing_flag !== "invalid") { flags.push(ev.routing_flag); }
      if (ev.status === "reported") { flags.push("quarantined"); }
      var photos = [];
      var addPhoto = function (p) { if (photos.indexOf(p) < 0) { photos.push(p); } };
      (ev.photos || []).forEach(addPhoto);
      history.forEach(function (t) { (t.photos || []).forEach(addPhoto); });
      var allowed = ev.allowed_actions || [];
      body.innerHTML =
        '<div class="gm-event" data-role="event" data-id="' + esc(ev.id) + '">' +
        '<div class="gm-event-head"><b>#' + esc(ev.id) + " " + esc(c.name) + "</b> " +
        '<span class="gm-status" style="background:' + statusColour(cfg, ev.status) + '">' +
        esc((cfg.statuses[ev.status] || [ev.status])[0]) + "</span>" +
        (c.hazard ? ' <span class="gm-flag gm-flag-overdue">隐患</span>' : "") + "</div>" +
        '<div class="gm-muted">' + esc(c.big_class_name || "") + "</div>" +
        '<p class="gm-desc">' + esc(ev.description || "（无描述）") + "</p>" +
        '<div class="gm-photos" data-role="photos">' + (photos.length ? photos.map(function (sha) {
          return '<span class="gm-photo" data-sha="' + esc(sha) + '">照片</span>';
        }).join("") : "") + "</div>" +
        '<dl class="gm-facts">' +
        "<dt>网格</dt><dd>" + (basic ? esc(basic.name) + " " : "") + esc(ev.grid_code || (ev.lon === null ? "无可信坐标" : "未落入网格")) + "</dd>" +
        "<dt>处置人</dt><dd>" + esc(ev.worker_no ? workerName(ev.worker_no) : "待派遣") + "</dd>" +
        "<dt>上报人</dt><dd>" + esc(ev.reporter || "—") + "</dd>" +
        "<dt>上报时间</dt><dd>" + esc(localTime(ev.reported_at || ev.received_at)) + "</dd>" +
        "<dt>到期时间</dt><dd>" + esc(ev.due_at ? localTime(ev.due_at) : "—") +
        ' <span class="gm-due" data-due="' + esc(ev.due_at && ["handled", "verified", "closed", "evaluated", "voided"].indexOf(ev.status) < 0 ? ev.due_at : "") + '"></span></dd>' +
        (ev.postponement_until ? "<dt>延期至</dt><dd>" + esc(localTime(ev.postponement_until)) + "</dd>" : "") +
        (ev.quarantine_reason ? "<dt>存疑原因</dt><dd>" + esc(ev.quarantine_reason) + "</dd>" : "") +
        "<dt>标记</dt><dd>" + (flags.length ? flags.map(function (x) {
          return '<span class="gm-flag gm-flag-' + esc(x) + '">' + esc(cfg.flags[x] || x) + "</span>";
        }).join(" ") : "—") + "</dd></dl>" +
        '<div class="gm-actions" data-role="actions">' + actionsHtml(ev, allowed) + "</div>" +
        '<p class="gm-error" data-role="action-error"></p>' +
        '<div class="gm-panel-title">处置过程</div><ol class="gm-history" data-role="history">' +
        history.map(function (t) {
          return "<li><span class=\"gm-time\">" + esc(localTime(t.at)) + "</span> <b>" + esc(ACTION_LABELS[t.action] || t.action) + "</b> " +
            esc((cfg.statuses[t.to_status] || [t.to_status])[0]) +
            ' <span class="gm-muted">' + esc(t.actor) + (t.worker_no ? " → " + esc(workerName(t.worker_no)) : "") +
            (t.note ? " · " + esc(t.note) : "") + "</span></li>";
        }).join("") + "</ol></div>";
      tick();
      reveal();
      loadPhotos(body.querySelector("[data-role=photos]"));
      wireActions(ev);
    }

    function actionsHtml(ev, allowed) {
      var parts = [];
      var has = function (a) { return allowed.indexOf(a) >= 0; };
      if (has("register")) {
        parts.push('<form data-action="register"><div class="gm-muted">立案：在地图上点击以更正位置（可不放置）</div>' +
          '<span data-role="placed" class="gm-muted"></span> ' +
          (cfg.crs === "wgs84" ? '<button type="button" data-role="place">在地图上放置</button> ' : "") +
          '<button type="submit">立案</button></form>');
      }
      if (has("dispatch")) {
        parts.push('<form data-action="dispatch">' + workerPicker(ev, false) + ' <button type="submit">派遣</button></form>');
      }
      if (has("reassign")) {
        parts.push('<form data-action="reassign">' + workerPicker(ev, true) + ' <button type="submit">改派</button></form>');
      }
      if (has("approve_postponement")) {
        parts.push('<form data-action="approve_postponement"><button type="submit">批准延期</button></form>');
      }
      if (has("deny_postponement")) {
        parts.push('<form data-action="deny_postponement"><button type="submit">驳回延期</button></form>');
      }
      if (has("verify")) {
        parts.push('<form data-action="verify"><input name="note" placeholder="核查意见" maxlength="500"> ' +
          '<button type="submit" name="passed" value="true">核查通过</button> ' +
          '<button type="submit" name="passed" value="false">不通过，返工</button></form>');
      }
      if (has("close")) {
        parts.push('<form data-action="close"><button type="submit">结案</button></form>');
      }
      if (has("evaluate")) {
        parts.push('<form data-action="evaluate"><select name="rating">' + [5, 4, 3, 2, 1].map(function (r) {
          return '<option value="' + r + '">' + r + " 分</option>";
        }).join("") + '</select> <button type="submit">评价</button></form>');
      }
      if (has("void")) {
        parts.push('<form data-action="void"><select name="reason">' + Object.keys(VOID_REASONS).map(function (k) {
          return '<option value="' + k + '">' + esc(VOID_REASONS[k]) + "</option>";
        }).join("") + '</select> <input name="duplicate_of" type="number" min="1" placeholder="重复于 #" hidden> ' +
          '<button type="submit">作废</button></form>');
      }
      return parts.length ? parts.join("") : '<p class="gm-muted">当前没有您可执行的操作</p>';
    }

    function wireActions(ev) {
      body.querySelectorAll("form[data-action]").forEach(function (form) {
        var action = form.getAttribute("data-action");
        var dup = form.querySelector("[name=duplicate_of]");
        if (dup) {
          form.reason.addEventListener("change", function () { dup.hidden = form.reason.value !== "duplicate"; });
        }
        var place = form.querySelector("[data-role=place]");
        if (place) {
          showPlaced(ev.id);
          place.addEventListener("click", function () { startPlacing(ev.id); });
        }
        form.addEventListener("submit", async function (e) {
          e.preventDefault();
          var payload = { action: action, row_version: ev.row_version };
          if (form.worker_no && form.worker_no.value) { payload.worker_no = form.worker_no.value; }
          if (action === "verify") {
            payload.passed = e.submitter ? e.submitter.value === "true" : true;
            if (form.note.value) { payload.note = form.note.value; }
          }
          if (action === "evaluate") { payload.rating = Number(form.rating.value); }
          if (action === "void") {
            payload.reason = form.reason.value;
            if (payload.reason === "duplicate") { payload.duplicate_of = Number(dup.value); }
          }
          if (action === "register" && placed && placed.id === ev.id) { payload.location = placed.spot; }
          await act(ev, payload);
        });
      });
    }

    // Placing a quarantined report: the next click on the map is its location. While placing,
    // markers, clusters and grids let the mouse through (CSS .gm-placing), so a click where
    // another event is drawn places the point instead of opening that event. The point is
    // kept per event, so a redraw of the panel (live feed) keeps it.
    function startPlacing(id) {
      placing = id;
      map.getContainer().classList.add("gm-placing");
      toast("请在地图上点击事件的正确位置", "info");
    }
    function stopPlacing() {
      placing = null;
      map.getContainer().classList.remove("gm-placing");
    }
    function showPlaced(id) {
      var slot = body.querySelector(".gm-event[data-id='" + id + "'] form[data-action=register] [data-role=placed]");
      if (slot && placed && placed.id === id) {
        slot.textContent = "位置：" + placed.spot.lon.toFixed(6) + ", " + placed.spot.lat.toFixed(6);
      }
    }
    function clearPlaced() {
      if (GM.placed) { map.removeLayer(GM.placed); GM.placed = null; }
      placed = null;
    }
    map.on("click", function (e) {
      if (placing === null) { return; }
      var id = placing;
      stopPlacing();
      clearPlaced();
      placed = { id: id, spot: { lon: Math.round(e.latlng.lng * 1e7) / 1e7, lat: Math.round(e.latlng.lat * 1e7) / 1e7 } };
      GM.placed = L.circleMarker(e.latlng, { pane: "gm-events", interactive: false, radius: 9, color: "#fff", weight: 3, fillColor: "#ff4d4f", fillOpacity: 1 }).addTo(map);
      showPlaced(id);
    });

    async function act(ev, payload) {
      var error = body.querySelector("[data-role=action-error]");
      body.querySelectorAll(".gm-actions button").forEach(function (b) { b.disabled = true; });
      try {
        var after = await api(cfg, "/events/" + ev.id + "/actions", null, {
          method: "POST",
          headers: { "Content-Type": "application/json", "Accept-Language": "zh-CN" },
          body: JSON.stringify(payload),
        });
        toast("#" + ev.id + " " + (ACTION_LABELS[payload.action] || payload.action) + "：已完成", "info");
        GM.state.lastAction = { id: ev.id, action: payload.action, status: after.status };
        clearPlaced();
        if (ctx.changed) { ctx.changed(after); }
        countsSoon();
        workers = null;
        await openEvent(ev.id);
      } catch (e) {
        if (e instanceof AuthNeeded) { location.reload(); return; }
        if (e.status === 409) {
          toast(e.message, "warn");
          await openEvent(ev.id);
          var again = body.querySelector("[data-role=action-error]");
          if (again) { again.textContent = e.message; }
        } else {
          if (error) { error.textContent = e.message; }
          body.querySelectorAll(".gm-actions button").forEach(function (b) { b.disabled = false; });
        }
      }
    }

    // Photos need the bearer token, so they are fetched and shown from blobs.
    function loadPhotos(host) {
      host.querySelectorAll("[data-sha]").forEach(async function (slot) {
        try {
          if (!(ctx.optional || {}).photos) { throw new Error("no photos API"); }
          var resp = await fetch(cfg.api + "/photos/" + encodeURIComponent(slot.getAttribute("data-sha")) + "/thumbnail", {
            headers: { Authorization: "Bearer " + token() },
          });
          if (!resp.ok) { throw new Error(); }
          var img = el("img", { alt: "现场照片", src: URL.createObjectURL(await resp.blob()) });
          slot.innerHTML = "";
          slot.appendChild(img);
        } catch (e) {
          slot.textContent = "照片不可用";
          slot.classList.add("gm-muted");
        }
      });
    }

    function tick() {
      document.querySelectorAll("[data-due]").forEach(function (node) {
        var due = node.getAttribute("data-due");
        node.textContent = due ? countdown(due) : "";
        node.classList.toggle("gm-late", !!due && new Date(due).getTime() < Date.now());
      });
    }
    setInterval(tick, 1000);

    function alarm(feature) {
      var c = ctx.cats[feature.properties.category];
      if (!c || !c.hazard) { return; }
      cards.classList.remove("gm-flash");
      void cards.offsetWidth;
      cards.classList.add("gm-flash");
      document.body.classList.add("gm-alarm");
      setTimeout(function () { document.body.classList.remove("gm-alarm"); }, 1600);
      GM.state.alarms = (GM.state.alarms || 0) + 1;
      if (sound.checked) { beep(); }
    }

    side.querySelector("[data-role=list]").addEventListener("click", function () {
      current = null;
      document.body.classList.remove("gm-side-collapsed");
      side.querySelectorAll(".gm-queue").forEach(function (b) { b.classList.remove("gm-on"); });
      eventList(cfg, body, ctx, openEvent);
    });
    return {
      // Queue counts and statistics load after the map is drawn: they are not needed for
      // the first screen and their requests would compete with the map's.
      start: function () {
        refreshCounts();
        statistics(cfg, side.querySelector("[data-role=stats-body]"), workerName, roster, ctx.optional || {});
      },
      openEvent: openEvent,
      changed: function (features) {
        countsSoon();
        if (current !== null && features.some(function (f) { return f.id === current; }) && !body.querySelector(":focus")) {
          openEvent(current);
        }
      },
      alarm: alarm,
    };
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

  // A heat legend with numbers: the ramp as the layer colours it (the same gradient), and
  // the counts at their places on it; the scale is fixed (cfg, from maps/styles.py), so the
  // numbers mean the same on every frame.
  function heatLegendHtml(cfg, scale, unit) {
    var keys = Object.keys(cfg.heatGradient).sort(function (a, b) { return Number(a) - Number(b); });
    var ramp = "linear-gradient(90deg, rgba(47, 84, 235, 0.25) 0%, " + keys.map(function (k) {
      return cfg.heatGradient[k] + " " + Math.round(Number(k) * 100) + "%";
    }).join(", ") + ")";
    return '<div class="gm-legend-title">热力 <span class="gm-muted">' + esc(unit) + "</span></div>" +
      '<div class="gm-heat-scale" data-role="heat-scale" data-max="' + scale.max + '">' +
      '<i style="background:' + ramp + '"></i><div class="gm-heat-ticks">' + scale.ticks.map(function (v) {
        return '<span data-value="' + v + '" style="left:' + (100 * v / scale.max).toFixed(1) + '%">' +
          (v === scale.max ? "≥" : "") + num(v) + "</span>";
      }).join("") + "</div></div>";
  }

  // The time control in the natural order: play first, then step back and forward, reverse
  // play last; Chinese titles; the speed as readable text ("1 帧/秒").
  function tidyTimeControl(control) {
    if (!control || !control._container) { return; }
    var bar = control._container;
    var order = [control._buttonPlayPause, control._buttonBackward, control._buttonForward, control._buttonPlayReversePause];
    var anchor = bar.firstChild;
    order.forEach(function (button) {
      if (button) { bar.insertBefore(button, anchor); anchor = button.nextSibling; }
    });
    var titles = [[control._buttonPlayPause, "播放/暂停"], [control._buttonBackward, "上一步"],
      [control._buttonForward, "下一步"], [control._buttonPlayReversePause, "倒放"]];
    titles.forEach(function (t) { if (t[0]) { t[0].title = t[1]; } });
    control._getDisplaySpeed = function (v) { return num(v, 1) + " 帧/秒"; };
    var speed = bar.querySelector(".timecontrol-speed .speed");
    if (speed && control._player) {
      speed.textContent = control._getDisplaySpeed(Math.round(1e4 / (control._player.getTransitionTime() || 1e3)) / 10);
    }
  }

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
    var cellKm2 = heat.cell_m ? (heat.cell_m * heat.cell_m) / 1e6 : null;
    var legend = control(map, "bottomright", "gm-legend",
      '<div data-role="density" class="gm-density-legend" hidden></div>' +
      heatLegendHtml(cfg, cfg.heatScale, "件/格/" + (STEPS[f.step] || f.step + "小时").replace(/^每/, "")) +
      '<div class="gm-muted gm-heat-note">' + (heat.binned
        ? "格 ≈ " + num(heat.cell_m) + " m 见方；1 件/格 ≈ " + num(1 / cellKm2) + " 件/km²"
        : "事件较少，按原始点位：每点 1 件") +
      "；色标固定，不随最忙的一帧变化</div>");
    var densityLegend = legend.querySelector("[data-role=density]");
    densityLayer(cfg, grids, stats, layers.density, densityLegend);
    map.on("overlayadd", function (e) { if (e.layer === layers.density) { densityLegend.hidden = false; } });
    map.on("overlayremove", function (e) { if (e.layer === layers.density) { densityLegend.hidden = true; } });

    // Frames on a fixed scale (per step length, maps/styles.py HEAT_SCALE): a cell with
    // heatScale.max events in one step is full red, whatever the busiest frame holds. Counts
    // are clipped to it (heatmap.js mis-draws values above its max).
    var scaleMax = cfg.heatScale.max;
    var frames = heat.frames.map(function (frame) {
      return frame.map(function (p) { return [p[0], p[1], Math.min(p[2], scaleMax)]; });
    });
    var totals = heat.frames.map(function (frame) {
      return frame.reduce(function (s, p) { return s + p[2]; }, 0);
    });
    var animated = layers.animated;
    var timeControl = window[cfg.animatedControl];
    // HeatmapOverlay keeps max 1 unless told: every frame it draws carries this max.
    animated._currentTimeData.max = scaleMax;
    animated._baseLayer._max = scaleMax;
    GM.state.heatScale = scaleMax;
    tidyTimeControl(timeControl);
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

  // --- leaders' page: assessment ---------------------------------------------------------

  function rateColour(cfg, rate) {
    if (rate === null || rate === undefined) { return "#d9d9d9"; }
    var ramp = cfg.rateRamp;
    return ramp[Math.min(ramp.length - 1, Math.floor(rate * ramp.length))];
  }

  function pct(rate) { return rate === null || rate === undefined ? "—" : (rate * 100).toFixed(1) + "%"; }

  function gradeCell(cfg, grade) {
    return '<span class="gm-grade" style="background:' + esc(cfg.grades[grade] || "#999") + '">' + esc(grade) + "</span>";
  }

  async function assessment(map, layers, cfg, me) {
    var bar = topBar(cfg, me,
      '<form method="get" class="gm-period"><input name="period" aria-label="考核期" value="' + esc(cfg.period) +
      '" size="14"><button type="submit">查看</button></form>');
    var loaded = await Promise.all([
      api(cfg, "/maps/base", { crs: cfg.crs }),
      api(cfg, "/assessment", { period: cfg.period }),
    ]);
    var base = loaded[0];
    var result = loaded[1];
    // The period's own local dates (its offset), whatever the browser's zone.
    bar.querySelector("[data-role=subtitle]").textContent = cfg.period + "（" +
      result.period.first_day + " 起，至 " + result.period.end_day + " 前）";
    setLive(bar, "on", "已计算");
    var byGrid = {};
    result.grids.forEach(function (g) { byGrid[g.grid_code] = g; });
    var byCommunity = {};
    result.communities.forEach(function (c) { byCommunity[c.community_code] = c; });
    var byWorker = {};
    result.workers.forEach(function (w) { byWorker[w.worker_no] = w; });
    var basic = base.grids.features.filter(function (f) { return f.properties.level === "basic"; });
    var upper = base.grids.features.filter(function (f) { return f.properties.level === "community"; });

    function figuresTip(p, figures) {
      var f = figures || { reported: 0, closed: 0, due: 0, due_closed_on_time: 0, on_time_rate: null };
      return "<b>" + esc(p.name) + "</b> " + esc(p.code) + "<br>按期办结率 " + pct(f.on_time_rate) +
        "（" + num(f.due_closed_on_time) + "/" + num(f.due) + "）<br>上报 " + num(f.reported) + " · 结案 " + num(f.closed);
    }
    function shade(lookup) {
      return function (f) {
        var fig = lookup[f.properties.code];
        return { color: "#595959", weight: 0.8, fillOpacity: 0.7,
          fillColor: rateColour(cfg, fig ? fig.on_time_rate : null) };
      };
    }
    L.geoJSON({ type: "FeatureCollection", features: basic }, {
      style: shade(byGrid),
      onEachFeature: function (f, layer) { layer.bindTooltip(figuresTip(f.properties, byGrid[f.properties.code]), { sticky: true }); },
    }).addTo(layers.grids);
    L.geoJSON({ type: "FeatureCollection", features: upper }, {
      style: shade(byCommunity),
      onEachFeature: function (f, layer) { layer.bindTooltip(figuresTip(f.properties, byCommunity[f.properties.code]), { sticky: true }); },
    }).addTo(layers.communities);
    if (base.bbox) {
      map.fitBounds([[base.bbox[1], base.bbox[0]], [base.bbox[3], base.bbox[2]]], { padding: [20, 20] });
    }
    var legend = cfg.rateRamp.map(function (c, i) {
      var lo = Math.round(i * 100 / cfg.rateRamp.length);
      var hi = Math.round((i + 1) * 100 / cfg.rateRamp.length);
      return '<div class="gm-ramp-row"><i style="background:' + c + '"></i>' + lo + "–" + hi + "%</div>";
    }).join("") + '<div class="gm-ramp-row"><i style="background:#d9d9d9"></i>无应办事件</div>';
    control(map, "bottomleft", "gm-legend", '<div class="gm-panel-title">按期办结率</div>' + legend);

    // Side panel: the two top lists, then one table per community with its workers' grades.
    var names = {};
    base.grids.features.forEach(function (f) { names[f.properties.code] = f.properties.name; });
    var communityWorkers = {};
    basic.forEach(function (f) {
      var parent = f.properties.parent;
      (f.properties.workers || []).forEach(function (w) {
        communityWorkers[parent] = communityWorkers[parent] || {};
        communityWorkers[parent][w[0]] = w[1];
      });
    });
    var html = '<section data-role="top-workers"><h2>本期优秀网格员（前 5）</h2>';
    html += result.top_workers.length ? "<table><tr><th>名次</th><th>工号</th><th>得分</th><th>等级</th><th>处置</th></tr>" +
      result.top_workers.map(function (no, i) {
        var w = byWorker[no];
        return "<tr><td>" + (i + 1) + "</td><td>" + esc(no) + "</td><td>" + w.score.toFixed(1) + "</td><td>" +
          gradeCell(cfg, w.grade) + "</td><td>" + num(w.handled) + "</td></tr>";
      }).join("") + "</table>" : '<p class="gm-muted">本期无达到处置件数门槛的网格员</p>';
    html += '</section><section data-role="top-events"><h2>本期优秀案件（前 10）</h2>';
    html += result.top_events.length ? "<ol>" + result.top_events.map(function (id) {
      return "<li>事件 #" + esc(id) + "</li>";
    }).join("") + "</ol>" : '<p class="gm-muted">本期无评价</p>';
    html += "</section>";
    result.communities.forEach(function (c) {
      var workers = Object.keys(communityWorkers[c.community_code] || {}).sort()
        .filter(function (no) { return byWorker[no]; });
      html += '<section data-role="community" data-code="' + esc(c.community_code) + '"><h2>' +
        esc(names[c.community_code] || c.community_code) + "</h2>" +
        '<p class="gm-muted">上报 ' + num(c.reported) + " · 结案 " + num(c.closed) + " · 按期办结 " +
        num(c.due_closed_on_time) + "/" + num(c.due) + "（" + pct(c.on_time_rate) + "）</p>" +
        (workers.length ? "<table><tr><th>工号</th><th>姓名</th><th>得分</th><th>等级</th></tr>" +
          workers.map(function (no) {
            var w = byWorker[no];
            return "<tr><td>" + esc(no) + "</td><td>" + esc(communityWorkers[c.community_code][no]) + "</td><td>" +
              w.score.toFixed(1) + "</td><td>" + gradeCell(cfg, w.grade) + "</td></tr>";
          }).join("") + "</table>" : "") + "</section>";
    });
    var side = el("aside", { class: "gm-side gm-assessment" }, html);
    document.body.classList.add("gm-has-assessment");
    document.body.appendChild(side);

    GM.state.assessedGrids = basic.filter(function (f) { return byGrid[f.properties.code]; }).length;
    GM.state.communityTables = result.communities.length;
    GM.state.topWorkers = result.top_workers.length;
    GM.state.topEvents = result.top_events.length;
    GM.state.readyAt = Math.round(performance.now());
    GM.state.ready = true;
    document.body.setAttribute("data-gm-ready", "1");
  }

  // --- entry point ---------------------------------------------------------------------

  // Pages in their own files (planner.js) register here; they load after this file.
  var PAGES = { dispatcher: dispatcher, heatmap: heatmap, assessment: assessment };
  // Pages whose data requests may start while /auth/me is on its way.
  var EARLY = { dispatcher: dispatcherRequests };
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
        mark("script");
        var held = token();
        var early = held && EARLY[kind] ? EARLY[kind](cfg) : null;
        var me = await signedIn(cfg);
        mark("me");
        // Signed in anew (the held token was refused): the early requests were refused too.
        if (token() !== held) { early = null; }
        await PAGES[kind](map, layers, cfg, me, early);
      } catch (e) {
        if (e instanceof AuthNeeded) { location.reload(); return; }
        fail("加载失败：" + (e && e.message ? e.message : e));
      }
    })();
  };

  window.GridMap = GM;
})();
