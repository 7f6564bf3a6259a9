#!/usr/bin/env python
from fairseq_tokendrop.commands.import_tf import main

raise SystemExit(main())
