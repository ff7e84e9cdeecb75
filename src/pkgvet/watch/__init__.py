"""``pkgvet watch``: follow an index's feed of new releases, scan each new release once, store
the result and alert on malicious or suspicious verdicts.

- :mod:`pkgvet.watch.feeds`: PyPI's RSS feeds and PEP 503 simple indexes, parsed defensively;
- :mod:`pkgvet.watch.watcher`: the poll loop, the two ways to scan (directly into a service
  database, or through a running service's API), the seen table and the webhook.
"""
