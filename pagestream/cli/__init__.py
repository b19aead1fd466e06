"""The ``pagestream`` command."""

from __future__ import annotations

import click

from pagestream.cli import admin, dlq, documents, exports, stack
from pagestream.cli.demo import demo


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pagestream")
def main() -> None:
    """pagestream: document OCR that starts only from committed rows.

    `pagestream up` starts a complete local stack; `pagestream submit FILE --wait` OCRs a file.
    """


stack.register(main)
documents.register(main)
admin.register(main)
exports.register(main)
dlq.register(main)
main.add_command(demo)
