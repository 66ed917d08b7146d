"""One HTTP request, printed as JSON: run by the host inside the container's network.

    python http_request.py METHOD URL [FORM-JSON]

Prints ``{"status": ..., "headers": {...}, "body": "..."}``; redirects are
not followed (UWS answers a job creation with 303 and the job's URL).
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
import urllib.request


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def main() -> None:
    method, url = sys.argv[1], sys.argv[2]
    form = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=30) as response:
            status, headers, body = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, headers, body = error.code, dict(error.headers), error.read()
    except OSError as error:  # refused, reset, timed out: not listening (yet)
        status, headers, body = 0, {}, str(error).encode()
    json.dump(
        {"status": status, "headers": headers, "body": body.decode(errors="replace")}, sys.stdout
    )


if __name__ == "__main__":
    main()
