"""`manage.py create_api_key --org SLUG --email EMAIL`: a new key, printed alone on the last line."""
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email, validate_slug

from arkloop.models import Membership
from arkloop.services import api_key_create, membership_ensure


class Command(BaseCommand):
    help = ("Create an API key for EMAIL in org SLUG, creating the org, the user and the membership "
            "when missing. Prints the key (shown only this once) alone on the last line.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", required=True, help="org slug, e.g. acme")
        parser.add_argument("--email", required=True, help="the key owner's email")
        parser.add_argument("--role", choices=Membership.Role.values,
                            help="role of a new membership (default member); changes an existing one")
        parser.add_argument("--name", default="", help="a label for the key")

    def handle(self, *args, org: str, email: str, role: str | None, name: str, **options) -> None:
        try:
            validate_slug(org)
            validate_email(email)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        membership = membership_ensure(org_slug=org, email=email, role=role)
        key, plaintext = api_key_create(membership=membership, name=name)
        self.stderr.write(f"created key {key.prefix}… for {email} ({membership.role}) in org {org}")
        self.stdout.write(plaintext)
