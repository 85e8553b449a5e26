"""Registry access for the portal: see `registry.client` for the API and why it is built the way it is.

Import from the modules themselves (`registry.client`, `registry.auth`, `registry.errors`): `import registry`
(Django loads the app at start-up) stays cheap, without oras and requests.
"""
