"""Print the development API key, creating it once (kept in .dev-api-key, which git ignores)."""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arkloop.settings")

import django  # noqa: E402

django.setup()

from arkloop.authentication import hash_api_key  # noqa: E402
from arkloop.models import ApiKey, Membership  # noqa: E402
from arkloop.services import api_key_create, membership_ensure  # noqa: E402

KEY_FILE = Path(__file__).resolve().parent.parent / ".dev-api-key"


def main() -> None:
    if KEY_FILE.exists():
        saved = KEY_FILE.read_text().strip()
        if ApiKey.objects.filter(key_hash=hash_api_key(saved), revoked_at__isnull=True).exists():
            print(saved)
            return
    membership = membership_ensure(org_slug="dev", email="dev@example.com", role=Membership.Role.ADMIN)
    _, plaintext = api_key_create(membership=membership, name="development")
    KEY_FILE.write_text(plaintext + "\n")
    KEY_FILE.chmod(0o600)
    print(plaintext)


if __name__ == "__main__":
    main()
