"""Every domain's tables, imported once so Alembic and ``create_all`` see the whole schema."""

from .accounts import models as _accounts  # noqa: F401
from .apps import models as _apps  # noqa: F401
from .appointments import models as _appointments  # noqa: F401
from .audit import models as _audit  # noqa: F401
from .cards import models as _cards  # noqa: F401
from .db import Base
from .family_doctors import models as _family_doctors  # noqa: F401
from .institutions import models as _institutions  # noqa: F401
from .kit import idempotency as _idempotency  # noqa: F401
from .kit import onetime as _onetime  # noqa: F401
from .mpi import models as _mpi  # noqa: F401
from .payments import models as _payments  # noqa: F401
from .qr import models as _qr  # noqa: F401
from .records import models as _records  # noqa: F401
from .statistics import models as _statistics  # noqa: F401

metadata = Base.metadata
