// mql5rt_events.hpp - the program's event loop: OnInit, the timer, trade transactions, OnDeinit
// (part of mql5rt.hpp).
//
// One timer per program. A timer event is never queued twice: when a handler overruns, the missed
// ticks are dropped. The period is at least env MQL_TIMER_MIN_MS (default 10, like the terminal).
// Trade transactions are delivered after the handler that caused them returns, one event each.
// SIGTERM/SIGINT model the terminal closing (OnDeinit with REASON_CLOSE); env MQL_RUN_SECONDS bounds
// the run (then REASON_REMOVE). Exit status: 0 after a normal stop, 3 when OnInit failed.
#pragma once

namespace mql {

struct Runtime {
    std::function<void()> on_timer, on_tick;
    std::function<void(const MqlTradeTransaction &, const MqlTradeRequest &, const MqlTradeResult &)> on_trade_tx;
    long timer_ms = 0;
    std::chrono::steady_clock::time_point next_timer;
    bool remove = false;
    std::string program = "program";
};
inline Runtime &rt() {
    static Runtime r;
    return r;
}
inline volatile sig_atomic_t &stop_signal() {
    static volatile sig_atomic_t s = 0;
    return s;
}

inline bool EventSetMillisecondTimer(int ms) {
    if (ms <= 0) return false;
    long min_ms = std::atol(env_str("MQL_TIMER_MIN_MS", "10").c_str());
    rt().timer_ms = std::max<long>(ms, std::max<long>(1, min_ms));
    rt().next_timer = std::chrono::steady_clock::now() + std::chrono::milliseconds(rt().timer_ms);
    return true;
}
inline bool EventSetTimer(int seconds) { return EventSetMillisecondTimer(seconds * 1000); }
inline void EventKillTimer() { rt().timer_ms = 0; }
inline void ExpertRemove() { rt().remove = true; }
inline bool IsStopped() { return rt().remove || stop_signal() != 0; }
inline long ChartID() { return 1; }

enum ENUM_MQL_INFO_STRING { MQL_PROGRAM_NAME, MQL_PROGRAM_PATH };
inline string MQLInfoString(ENUM_MQL_INFO_STRING prop) {
    (void)prop;
    return from_std(rt().program);
}
inline string Symbol() { return from_std(env_str("MQL_CHART_SYMBOL", "EURUSD")); }

inline void on_signal(int) { stop_signal() = 1; }

inline void rt_init(int argc, char **argv) {
    (void)argc;
    start_time();
    std::string p = argv[0];
    size_t slash = p.rfind('/');
    rt().program = slash == std::string::npos ? p : p.substr(slash + 1);
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    std::string log = env_str("MQL_LOG_FILE");
    if (!log.empty()) log_file() = std::fopen(log.c_str(), "ab");
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
}

inline void deliver_trade_events() {
    sim::check_pending();  // pending orders trigger or expire between handlers, as on a server
    sim::Server &s = sim::srv();
    while (!s.events.empty()) {
        sim::TxEvent e = s.events.front();
        s.events.pop_front();
        if (rt().on_trade_tx) rt().on_trade_tx(e.tx, e.req, e.res);
    }
}

// Returns the OnDeinit reason.
inline int rt_loop() {
    long max_run_ms = long(std::atof(env_str("MQL_RUN_SECONDS", "0").c_str()) * 1000.0);
    auto started = std::chrono::steady_clock::now();
    for (;;) {
        deliver_trade_events();
        if (stop_signal()) return REASON_CLOSE;
        if (rt().remove) return REASON_PROGRAM;
        auto now = std::chrono::steady_clock::now();
        if (max_run_ms > 0 && now - started >= std::chrono::milliseconds(max_run_ms)) return REASON_REMOVE;
        if (rt().timer_ms > 0 && now >= rt().next_timer) {
            if (rt().on_timer) rt().on_timer();
            auto after = std::chrono::steady_clock::now();
            auto period = std::chrono::milliseconds(rt().timer_ms);
            rt().next_timer += period;
            if (rt().next_timer <= after) rt().next_timer = after + period;  // overrun: drop missed ticks
            continue;
        }
        auto wake = now + std::chrono::milliseconds(50);
        if (rt().timer_ms > 0 && rt().next_timer < wake) wake = rt().next_timer;
        std::this_thread::sleep_until(wake);
    }
}

inline void rt_shutdown() {
    for (int h = 1; h <= FILE_MAX; ++h)
        if (file_table()[h].f) FileClose(h);
    for (int h = 1; h <= SOCKET_MAX; ++h)
        if (sock_table()[h].used) SocketClose(h);
    std::fflush(stdout);
}

}  // namespace mql
