"""Notifications where developers already look: events, channels, subscriptions and their delivery.

- `events`: the event types and `emit()`, which records an event inside the writer's transaction (state
  transitions only; one `build.detected` per digest; a repeat window per (override, event type) for flapping
  ones) and starts the fan-out after commit. Nothing is sent in the request or the check loop.
- `delivery`: the django-q2 side: fan-out of events to the channels whose subscriptions match (and to owners for
  their own failures), one task per delivery, retries with backoff on timeouts and 5xx, every attempt recorded.
- `channels`: the senders (generic webhook with `X-Signature: sha256=<HMAC>`, Slack, Teams Workflows, e-mail)
  and the check of a channel's URL.
"""
