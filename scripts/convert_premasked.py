#!/usr/bin/env python
from fairseq_tokendrop.commands.convert_premasked import main

raise SystemExit(main())
