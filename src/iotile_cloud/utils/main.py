"""``BaseMain``: the opinionated script skeleton of 0.9.14 (parse args, log in, work, log out)."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Sequence

from iotile_cloud.api.connection import DOMAIN_NAME, Api

# With the names 0.9.14 exposed (it had no __all__).
__all__ = ["BaseMain", "Api", "argparse", "getpass", "logger", "logging", "sys"]

logger = logging.getLogger(__name__)
LOG_FORMAT = "[%(asctime)-15s] %(levelname)-6s %(message)s"
DATE_FORMAT = "%d/%b/%Y %H:%M:%S"


class BaseMain:
    """Override ``add_extra_args``, ``get_domain``, ``before_login``, ``login``, ``after_login``,
    ``logout`` or ``after_logout``; call ``main()``.

    New flags: ``--domain``, ``--token`` (skip the password prompt), ``--log-level``.
    """

    parser: argparse.ArgumentParser
    args: argparse.Namespace
    api: Api
    domain: str = DOMAIN_NAME  # a subclass may set its server here (0.9.14's default for get_domain)

    def __init__(self, argv: Sequence[str] | None = None) -> None:
        self.parser = argparse.ArgumentParser(description=self.__doc__)
        self.parser.add_argument("-u", "--user", dest="email", type=str, help="Email used for login")
        self.parser.add_argument(
            "--domain", dest="domain", type=str, default=None, help=f"Server to use (default {DOMAIN_NAME})"
        )
        self.parser.add_argument(
            "--token", dest="token", type=str, default=None, help="Use this JWT instead of asking for a password"
        )
        self.parser.add_argument(
            "--log-level",
            dest="log_level",
            default="INFO",
            choices=["DEBUG", "INFO", "WARNING", "ERROR"],
            help="Logging level",
        )
        self.add_extra_args()
        self.args = self.parser.parse_args(argv)
        self.config_logging()
        self._used_password = False

    def _critical_exit(self, msg: str) -> None:
        logger.error(msg)
        sys.exit(1)

    def config_logging(self) -> None:
        """Override to configure logging differently."""
        logging.basicConfig(level=getattr(logging, self.args.log_level), format=LOG_FORMAT, datefmt=DATE_FORMAT)

    def add_extra_args(self) -> None:
        """Add your own arguments to ``self.parser``."""

    def get_domain(self) -> str:
        return str(self.args.domain or self.domain)

    def before_login(self) -> None:
        pass

    def login(self) -> bool:
        if self.args.token:
            self.api.set_token(self.args.token)
            return True
        if not self.args.email:
            self._critical_exit("User email is required: --user (or pass --token)")
        password = getpass.getpass()
        self._used_password = True
        return self.api.login(email=self.args.email, password=password)

    def after_login(self) -> None:
        """Your script's work."""

    def logout(self) -> None:
        if self._used_password:
            self.api.logout()

    def after_logout(self) -> None:
        pass

    def main(self) -> None:
        self.domain = self.get_domain()
        self.api = Api(self.domain)
        self.before_login()
        if self.login():
            try:
                self.after_login()
            finally:
                # Log out even when the work failed.
                self.logout()
            self.after_logout()
