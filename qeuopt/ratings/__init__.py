"""The rating page: people rate a study's images in a browser, and ratings become data.

    qeuopt rate studies/artist_pairs_l9.toml     # serves http://127.0.0.1:8765

``server`` is a small JSON API on the standard library's ``ThreadingHTTPServer`` (one
user or a handful of raters need no framework, and nothing has to be installed);
``static/`` holds the page itself, plain HTML, CSS and JavaScript with no external
fonts, scripts or styles, so it works with no internet. ``catalog`` lists the images a
study may serve, ``sync`` copies ratings from the rating store to MLflow.
"""
