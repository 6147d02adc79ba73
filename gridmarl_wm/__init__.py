"""gridmarl_wm: a learned simulator of the gridmarl coin game."""
