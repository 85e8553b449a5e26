"""Sign-in with the cluster's identity provider (OIDC, Deckhouse Dex): roles from groups, the issuer's health."""
