# The previous release, for upgrade tests (60-deb builds its package, 80-e2e
# imports its templates first). Sourced; a commit, so a clone without tags
# has it too.
prev_version=0.1.0
prev_commit=e441e99 # tag v0.1.0
