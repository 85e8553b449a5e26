"""The portal's registry view: digest checks and discovery (`checks`), per-registry-host backoff (`circuits`), the
dispatcher and its lease (`dispatcher`, `schedules`) and registry push notifications (`webhooks`)."""
