#!/usr/bin/env python
from fairseq_tokendrop.commands.eval_mlm_accuracy import main

raise SystemExit(main())
