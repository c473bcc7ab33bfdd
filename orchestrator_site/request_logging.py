"""How refused requests are logged: a denied request (403) is one line, not a traceback.

Django logs a PermissionDenied on `django.request` with the exception attached, so every refused page view printed a
traceback (two, chained, when the refusal was raised while another exception was handled): noise for what is an
expected answer, and it buried real errors. The line keeps the path, the status and the reason.
"""

from __future__ import annotations

import logging


class DeniedWithoutTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) == 403 and record.exc_info:
            reason = record.exc_info[1]
            if reason is not None and str(reason):
                # The message is %-formatted with the record's args later: a % in the reason is text.
                record.msg = f"{record.msg} ({str(reason).replace('%', '%%')})"
            record.exc_info = None
            record.exc_text = None
        return True
