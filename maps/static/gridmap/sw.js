/* The tablet page's service worker: keeps /m and its assets so the page opens offline.
 *
 * Served by gridmap at /m/sw.js with __ASSETS__ and __VERSION__ filled in (maps/tablet.py).
 * Only the page and its listed assets are answered here; every other request (the API, the
 * dispatcher's pages, which share the "/m" prefix) goes to the network untouched, so data is
 * never served stale from a cache. The page itself is network first (a new release shows at
 * once when online), the assets cache first (their URLs carry their content hash).
 */
'use strict';
const CACHE = 'gridmap-m-__VERSION__';
const ASSETS = __ASSETS__;
const PAGE = ASSETS[0];

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches.open(CACHE).then((cache) => cache.addAll(ASSETS)).then(() => self.skipWaiting())
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(
        names.filter((n) => n.startsWith('gridmap-m-') && n !== CACHE).map((n) => caches.delete(n))
      ))
      .then(() => self.clients.claim())
  );
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname === PAGE) {
    event.respondWith(
      fetch(request)
        .then((response) => {
          if (response.ok) {
            const copy = response.clone();
            caches.open(CACHE).then((cache) => cache.put(PAGE, copy));
          }
          return response;
        })
        .catch(() => caches.match(PAGE))
    );
    return;
  }
  const path = url.pathname + url.search;
  if (ASSETS.includes(path)) {
    event.respondWith(caches.match(path).then((hit) => hit || fetch(request)));
  }
});
