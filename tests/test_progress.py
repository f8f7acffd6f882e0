"""The one progress line: k/n, elapsed, and an ETA measured on the items finished here only."""

from __future__ import annotations

from edgeflownas.progress import Progress, duration


def clock(*times: float):
    return iter(times).__next__


def test_no_eta_before_an_item_finished_here():
    progress = Progress(4, what="retrains done", clock=clock(0.0, 5.0))
    assert progress.line() == "0/4 retrains done, elapsed 0:00:05"


def test_eta_is_the_time_per_item_here_times_the_items_left():
    progress = Progress(5, clock=clock(10.0, 70.0, 190.0))
    progress.advance()
    assert progress.line() == "1/5 done, elapsed 0:01:00, ETA 0:04:00"
    progress.advance()
    assert progress.line() == "2/5 done, elapsed 0:03:00, ETA 0:04:30"


def test_items_found_finished_count_towards_k_but_not_the_rate():
    # 6 of 10 were finished before (a resumed study); 2 finished here in 100 s: 50 s each, 2 left
    progress = Progress(10, done=6, clock=clock(0.0, 100.0))
    progress.advance(2)
    assert progress.line() == "8/10 done, elapsed 0:01:40, ETA 0:01:40"
    # a search generation of 4 codes of which 3 were in the store: 1 new one in 30 s, 30 s for each of the 6 left
    search = Progress(10, what="candidates scored", clock=clock(0.0, 30.0))
    search.advance(1, found=3)
    assert search.line() == "4/10 candidates scored, elapsed 0:00:30, ETA 0:03:00"


def test_duration_reads_as_clock_time():
    assert duration(0.4) == "0:00:00"
    assert duration(3725) == "1:02:05"
    assert duration(90000) == "1 days, 1:00:00"
    assert duration(-3) == "0:00:00"
