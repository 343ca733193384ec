# Models arrive with the segments issue.
