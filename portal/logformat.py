"""`PORTAL_LOG_FORMAT=json`: one JSON object per log line, for log collectors (Loki, Elasticsearch, ...)."""

import json
import logging
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", "request_id"}`, plus `exception` with the traceback when there is one.

    The request id comes from `portal.middleware.RequestIDLogFilter` (also inside tasks a request enqueued).
    """

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
            "process": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
