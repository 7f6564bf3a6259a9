#!/usr/bin/env python
from fairseq_tokendrop.commands.inspect_dropping import main

raise SystemExit(main())
