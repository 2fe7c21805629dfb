import time, os, signal, pytest, dovecot_harness as h
@pytest.mark.parametrize("n", range(6))
def test_r(dovecot, make_message, n):
    inst = dovecot()
    md = inst.maildir("bob"); md.deliver(make_message("x"))
    t=time.monotonic(); inst.stop(); print("stop %.2f %s" % (time.monotonic()-t, inst.slow_stops))
    inst.start()
    p = inst.pop3("bob"); p.quit()
    t=time.monotonic(); inst.stop(); print("stop2 %.2f %s" % (time.monotonic()-t, inst.slow_stops))
