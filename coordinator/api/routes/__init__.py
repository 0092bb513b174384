"""The API's routers, one per area: accounts, catalog, jobs, the log."""
