"""Creates a container on Azurite with the emulator's well-known development account (a Shared
Key signed `Create Container`, Python's standard library only). Usage: URL CONTAINER, where URL is
Azurite's blob endpoint (http://127.0.0.1:PORT)."""
import base64
import hashlib
import hmac
import sys
import urllib.error
import urllib.request
from email.utils import formatdate

# Azurite's published development key (not a secret):
# https://learn.microsoft.com/azure/storage/common/storage-use-azurite#well-known-storage-account-and-key
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

url, container = f"{sys.argv[1].rstrip('/')}/{ACCOUNT}", sys.argv[2]
date = formatdate(usegmt=True)
version = "2021-08-06"
to_sign = "\n".join(
    ["PUT", "", "", "", "", "application/octet-stream", "", "", "", "", "", ""]
    + [f"x-ms-date:{date}", f"x-ms-version:{version}", f"/{ACCOUNT}/{ACCOUNT}/{container}\nrestype:container"]
)
sig = base64.b64encode(
    hmac.new(base64.b64decode(KEY), to_sign.encode(), hashlib.sha256).digest()
).decode()
req = urllib.request.Request(
    f"{url}/{container}?restype=container",
    method="PUT",
    data=b"",
    headers={
        "Content-Type": "application/octet-stream",
        "x-ms-date": date,
        "x-ms-version": version,
        "Authorization": f"SharedKey {ACCOUNT}:{sig}",
    },
)
try:
    urllib.request.urlopen(req).read()
except urllib.error.HTTPError as e:
    if e.code != 409:  # 409: the container exists already
        sys.exit(f"create container {container}: {e.code} {e.read().decode(errors='replace')}")
