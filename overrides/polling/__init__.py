"""The portal's registry view: when to check (`cadence`: intervals and the backoff rule), digest checks and
discovery (`checks`), per-registry-host backoff (`circuits`), the dispatcher (`dispatcher`), its lease (`lease`)
and the Schedule that keeps it running (`watchdog`), and registry push notifications (`webhooks`)."""
