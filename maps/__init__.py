"""Map rendering: folium pages, display layers, vendored assets (``api → maps → gis``).

Only this package imports folium. Pages are data-free shells (see :mod:`maps.pages`) whose
scripts and styles are served from ``maps/static`` (see :mod:`maps.assets`).
"""
