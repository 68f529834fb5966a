// mql5rt_trade.hpp - a simulated trade server: account, symbols, market orders, positions, history,
// OrderSend, trade transactions, and a CTrade stand-in (part of mql5rt.hpp). Written for mtbridge.
//
// Configuration: env MQL_TRADE_CONFIG names a text file, re-read whenever it changes, with lines
//   account login=50123 balance=10000 currency=USD leverage=100 server=Sim company=Sim trade=1
//   symbol EURUSD bid=1.1 ask=1.1002 digits=5 vol_min=0.01 vol_max=100 vol_step=0.01 contract=100000 trade=1
// State: env MQL_TRADE_STATE names a file holding positions, orders, deals and the ticket counter, so
// that the server outlives a terminal restart. It is rewritten (atomically) after every trade.
// Market execution (TRADE_ACTION_DEAL), position SL/TP changes (TRADE_ACTION_SLTP), and pending
// limit/stop orders (TRADE_ACTION_PENDING, TRADE_ACTION_REMOVE) that trigger when the configured
// prices cross them and expire at ORDER_TIME_SPECIFIED; accounts are hedging accounts.
#pragma once

namespace mql {

enum ENUM_ORDER_TYPE {
    ORDER_TYPE_BUY = 0,
    ORDER_TYPE_SELL = 1,
    ORDER_TYPE_BUY_LIMIT = 2,
    ORDER_TYPE_SELL_LIMIT = 3,
    ORDER_TYPE_BUY_STOP = 4,
    ORDER_TYPE_SELL_STOP = 5,
    ORDER_TYPE_BUY_STOP_LIMIT = 6,
    ORDER_TYPE_SELL_STOP_LIMIT = 7,
    ORDER_TYPE_CLOSE_BY = 8,
};
enum ENUM_ORDER_STATE {
    ORDER_STATE_STARTED = 0,
    ORDER_STATE_PLACED = 1,
    ORDER_STATE_CANCELED = 2,
    ORDER_STATE_PARTIAL = 3,
    ORDER_STATE_FILLED = 4,
    ORDER_STATE_REJECTED = 5,
    ORDER_STATE_EXPIRED = 6,
};
enum ENUM_ORDER_TYPE_FILLING { ORDER_FILLING_FOK = 0, ORDER_FILLING_IOC = 1, ORDER_FILLING_RETURN = 2 };
enum ENUM_ORDER_TYPE_TIME { ORDER_TIME_GTC = 0, ORDER_TIME_DAY = 1, ORDER_TIME_SPECIFIED = 2 };
enum ENUM_TRADE_REQUEST_ACTIONS {
    TRADE_ACTION_DEAL = 1,
    TRADE_ACTION_PENDING = 5,
    TRADE_ACTION_SLTP = 6,
    TRADE_ACTION_MODIFY = 7,
    TRADE_ACTION_REMOVE = 8,
    TRADE_ACTION_CLOSE_BY = 10,
};
enum ENUM_DEAL_TYPE { DEAL_TYPE_BUY = 0, DEAL_TYPE_SELL = 1, DEAL_TYPE_BALANCE = 2 };
enum ENUM_DEAL_ENTRY { DEAL_ENTRY_IN = 0, DEAL_ENTRY_OUT = 1, DEAL_ENTRY_INOUT = 2, DEAL_ENTRY_OUT_BY = 3 };
enum ENUM_POSITION_TYPE { POSITION_TYPE_BUY = 0, POSITION_TYPE_SELL = 1 };
enum ENUM_TRADE_TRANSACTION_TYPE {
    TRADE_TRANSACTION_ORDER_ADD = 0,
    TRADE_TRANSACTION_ORDER_UPDATE = 1,
    TRADE_TRANSACTION_ORDER_DELETE = 2,
    TRADE_TRANSACTION_HISTORY_ADD = 3,
    TRADE_TRANSACTION_HISTORY_UPDATE = 4,
    TRADE_TRANSACTION_HISTORY_DELETE = 5,
    TRADE_TRANSACTION_DEAL_ADD = 6,
    TRADE_TRANSACTION_DEAL_UPDATE = 7,
    TRADE_TRANSACTION_DEAL_DELETE = 8,
    TRADE_TRANSACTION_POSITION = 9,
    TRADE_TRANSACTION_REQUEST = 10,
};
const uint TRADE_RETCODE_REQUOTE = 10004;
const uint TRADE_RETCODE_REJECT = 10006;
const uint TRADE_RETCODE_CANCEL = 10007;
const uint TRADE_RETCODE_PLACED = 10008;
const uint TRADE_RETCODE_DONE = 10009;
const uint TRADE_RETCODE_DONE_PARTIAL = 10010;
const uint TRADE_RETCODE_ERROR = 10011;
const uint TRADE_RETCODE_TIMEOUT = 10012;
const uint TRADE_RETCODE_INVALID = 10013;
const uint TRADE_RETCODE_INVALID_VOLUME = 10014;
const uint TRADE_RETCODE_INVALID_PRICE = 10015;
const uint TRADE_RETCODE_INVALID_STOPS = 10016;
const uint TRADE_RETCODE_TRADE_DISABLED = 10017;
const uint TRADE_RETCODE_MARKET_CLOSED = 10018;
const uint TRADE_RETCODE_NO_MONEY = 10019;
const uint TRADE_RETCODE_PRICE_CHANGED = 10020;
const uint TRADE_RETCODE_PRICE_OFF = 10021;
const uint TRADE_RETCODE_INVALID_EXPIRATION = 10022;
const uint TRADE_RETCODE_INVALID_ORDER = 10035;
const uint TRADE_RETCODE_INVALID_FILL = 10030;
const uint TRADE_RETCODE_CONNECTION = 10031;
const uint TRADE_RETCODE_POSITION_CLOSED = 10036;

enum ENUM_SYMBOL_INFO_DOUBLE {
    SYMBOL_BID,
    SYMBOL_ASK,
    SYMBOL_POINT,
    SYMBOL_VOLUME_MIN,
    SYMBOL_VOLUME_MAX,
    SYMBOL_VOLUME_STEP,
    SYMBOL_TRADE_CONTRACT_SIZE,
    SYMBOL_TRADE_TICK_SIZE,
    SYMBOL_TRADE_TICK_VALUE,
};
enum ENUM_SYMBOL_INFO_INTEGER { SYMBOL_DIGITS, SYMBOL_TRADE_MODE, SYMBOL_SPREAD, SYMBOL_TIME, SYMBOL_FILLING_MODE };
enum ENUM_SYMBOL_TRADE_MODE { SYMBOL_TRADE_MODE_DISABLED = 0, SYMBOL_TRADE_MODE_FULL = 4 };
const int SYMBOL_FILLING_FOK = 1;
const int SYMBOL_FILLING_IOC = 2;
enum ENUM_ACCOUNT_INFO_INTEGER {
    ACCOUNT_LOGIN,
    ACCOUNT_LEVERAGE,
    ACCOUNT_TRADE_ALLOWED,
    ACCOUNT_TRADE_EXPERT,
    ACCOUNT_MARGIN_MODE,
};
enum ENUM_ACCOUNT_MARGIN_MODE { ACCOUNT_MARGIN_MODE_RETAIL_NETTING = 0, ACCOUNT_MARGIN_MODE_EXCHANGE = 1, ACCOUNT_MARGIN_MODE_RETAIL_HEDGING = 2 };
enum ENUM_ACCOUNT_INFO_DOUBLE {
    ACCOUNT_BALANCE,
    ACCOUNT_CREDIT,
    ACCOUNT_PROFIT,
    ACCOUNT_EQUITY,
    ACCOUNT_MARGIN,
    ACCOUNT_MARGIN_FREE,
    ACCOUNT_MARGIN_LEVEL,
};
enum ENUM_ACCOUNT_INFO_STRING { ACCOUNT_NAME, ACCOUNT_SERVER, ACCOUNT_CURRENCY, ACCOUNT_COMPANY };
enum ENUM_POSITION_PROPERTY_INTEGER {
    POSITION_TICKET,
    POSITION_TIME,
    POSITION_TIME_MSC,
    POSITION_TYPE,
    POSITION_MAGIC,
    POSITION_IDENTIFIER,
};
enum ENUM_POSITION_PROPERTY_DOUBLE {
    POSITION_VOLUME,
    POSITION_PRICE_OPEN,
    POSITION_SL,
    POSITION_TP,
    POSITION_PRICE_CURRENT,
    POSITION_SWAP,
    POSITION_PROFIT,
};
enum ENUM_POSITION_PROPERTY_STRING { POSITION_SYMBOL, POSITION_COMMENT };
enum ENUM_DEAL_PROPERTY_INTEGER {
    DEAL_TICKET,
    DEAL_ORDER,
    DEAL_TIME,
    DEAL_TIME_MSC,
    DEAL_TYPE,
    DEAL_ENTRY,
    DEAL_MAGIC,
    DEAL_POSITION_ID,
};
enum ENUM_DEAL_PROPERTY_DOUBLE { DEAL_VOLUME, DEAL_PRICE, DEAL_COMMISSION, DEAL_SWAP, DEAL_PROFIT, DEAL_FEE };
enum ENUM_DEAL_PROPERTY_STRING { DEAL_SYMBOL, DEAL_COMMENT };
enum ENUM_ORDER_PROPERTY_INTEGER {
    ORDER_TICKET,
    ORDER_TIME_SETUP,
    ORDER_TIME_SETUP_MSC,
    ORDER_TIME_DONE,
    ORDER_TIME_DONE_MSC,
    ORDER_TYPE,
    ORDER_STATE,
    ORDER_MAGIC,
    ORDER_POSITION_ID,
    ORDER_TYPE_TIME,
    ORDER_TIME_EXPIRATION,
};
enum ENUM_ORDER_PROPERTY_DOUBLE { ORDER_VOLUME_INITIAL, ORDER_VOLUME_CURRENT, ORDER_PRICE_OPEN, ORDER_SL, ORDER_TP, ORDER_PRICE_CURRENT };
enum ENUM_ORDER_PROPERTY_STRING { ORDER_SYMBOL, ORDER_COMMENT };
enum ENUM_TERMINAL_INFO_INTEGER { TERMINAL_CONNECTED, TERMINAL_TRADE_ALLOWED };
enum ENUM_MQL_INFO_INTEGER { MQL_TRADE_ALLOWED, MQL_TESTER, MQL_OPTIMIZATION };

struct MqlTradeRequest {
    ENUM_TRADE_REQUEST_ACTIONS action = ENUM_TRADE_REQUEST_ACTIONS(0);
    ulong magic = 0;
    ulong order = 0;
    string symbol;
    double volume = 0;
    double price = 0;
    double stoplimit = 0;
    double sl = 0;
    double tp = 0;
    ulong deviation = 0;
    ENUM_ORDER_TYPE type = ORDER_TYPE_BUY;
    ENUM_ORDER_TYPE_FILLING type_filling = ORDER_FILLING_FOK;
    ENUM_ORDER_TYPE_TIME type_time = ORDER_TIME_GTC;
    datetime expiration = 0;
    string comment;
    ulong position = 0;
    ulong position_by = 0;
};
struct MqlTradeResult {
    uint retcode = 0;
    ulong deal = 0;
    ulong order = 0;
    double volume = 0;
    double price = 0;
    double bid = 0;
    double ask = 0;
    string comment;
    uint request_id = 0;
    int retcode_external = 0;
};
struct MqlTradeCheckResult {
    uint retcode = 0;
    double balance = 0, equity = 0, profit = 0, margin = 0, margin_free = 0, margin_level = 0;
    string comment;
};
struct MqlTradeTransaction {
    ulong deal = 0;
    ulong order = 0;
    string symbol;
    ENUM_TRADE_TRANSACTION_TYPE type = TRADE_TRANSACTION_ORDER_ADD;
    ENUM_ORDER_TYPE order_type = ORDER_TYPE_BUY;
    ENUM_ORDER_STATE order_state = ORDER_STATE_STARTED;
    ENUM_DEAL_TYPE deal_type = DEAL_TYPE_BUY;
    ENUM_ORDER_TYPE_TIME time_type = ORDER_TIME_GTC;
    datetime time_expiration = 0;
    double price = 0;
    double price_trigger = 0;
    double price_sl = 0;
    double price_tp = 0;
    double volume = 0;
    ulong position = 0;
    ulong position_by = 0;
};
struct MqlTick {
    datetime time = 0;
    double bid = 0, ask = 0, last = 0;
    ulong volume = 0;
    long time_msc = 0;
    uint flags = 0;
    double volume_real = 0;
};

namespace sim {

struct Symbol {
    double bid = 0, ask = 0, point = 0.00001, vol_min = 0.01, vol_max = 100, vol_step = 0.01, contract = 100000;
    int digits = 5;
    bool trade = true;
};
struct Position {
    ulong ticket = 0, identifier = 0, magic = 0;
    std::string symbol, comment;
    int type = 0;
    double volume = 0, price_open = 0, sl = 0, tp = 0;
    long time_msc = 0;
};
struct Order {
    ulong ticket = 0, magic = 0, position = 0;
    std::string symbol, comment;
    int type = 0, state = 0;
    double volume = 0, price = 0, sl = 0, tp = 0;
    long time_msc = 0;
    long expiration = 0;  // server time (TimeCurrent) seconds; 0 = good till cancelled
};
struct Deal {
    ulong ticket = 0, order = 0, magic = 0, position = 0;
    std::string symbol, comment;
    int type = 0, entry = 0;
    double volume = 0, price = 0, profit = 0;
    long time_msc = 0;
};
struct TxEvent {
    MqlTradeTransaction tx;
    MqlTradeRequest req;
    MqlTradeResult res;
};

struct Server {
    long login = 50123, leverage = 100;
    double balance = 10000;
    std::string currency = "USD", server = "mtbridge-Sim", company = "mtbridge simulator", name = "Simulated";
    bool account_trade = true;
    std::map<std::string, Symbol> symbols;
    std::vector<Position> positions;
    std::vector<Order> orders;   // history
    std::vector<Order> pending;  // active pending orders
    std::vector<Deal> deals;
    ulong next_ticket = 1000;
    std::deque<TxEvent> events;
    std::string config_path, state_path;
    struct timespec config_mtime {};
    bool loaded = false;
    long selected_position = -1;
    ulong selected_deal = 0, selected_order = 0, selected_pending = 0;
};
inline Server &srv();

inline std::string hex_encode(const std::string &s) {
    static const char *h = "0123456789abcdef";
    std::string o = s.empty() ? "-" : "";
    for (unsigned char c : s) {
        o += h[c >> 4];
        o += h[c & 15];
    }
    return o;
}
inline std::string hex_decode(const std::string &s) {
    if (s == "-") return "";
    std::string o;
    for (size_t i = 0; i + 1 < s.size(); i += 2) o += char(std::stoi(s.substr(i, 2), nullptr, 16));
    return o;
}
inline std::map<std::string, std::string> kv(const std::vector<std::string> &words) {
    std::map<std::string, std::string> m;
    for (auto &w : words) {
        size_t p = w.find('=');
        if (p != std::string::npos) m[w.substr(0, p)] = w.substr(p + 1);
    }
    return m;
}
inline std::vector<std::string> split_words(const std::string &line) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && std::isspace((unsigned char)line[i])) ++i;
        size_t j = i;
        while (j < line.size() && !std::isspace((unsigned char)line[j])) ++j;
        if (j > i) out.push_back(line.substr(i, j - i));
        i = j;
    }
    return out;
}
inline bool read_lines(const std::string &path, std::vector<std::string> &lines) {
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f) return false;
    std::string cur;
    int c;
    while ((c = std::fgetc(f)) != EOF) {
        if (c == '\n') {
            lines.push_back(cur);
            cur.clear();
        } else {
            cur += char(c);
        }
    }
    if (!cur.empty()) lines.push_back(cur);
    std::fclose(f);
    return true;
}

inline void load_config(Server &s) {
    if (s.config_path.empty()) return;
    struct stat st {};
    if (::stat(s.config_path.c_str(), &st) != 0) return;
    if (st.st_mtim.tv_sec == s.config_mtime.tv_sec && st.st_mtim.tv_nsec == s.config_mtime.tv_nsec) return;
    std::vector<std::string> lines;
    if (!read_lines(s.config_path, lines)) return;
    s.config_mtime = st.st_mtim;
    for (auto &line : lines) {
        auto w = split_words(line);
        if (w.empty() || w[0][0] == '#') continue;
        auto m = kv(w);
        if (w[0] == "account") {
            if (m.count("login")) s.login = std::stol(m["login"]);
            if (m.count("leverage")) s.leverage = std::stol(m["leverage"]);
            if (m.count("balance") && !s.loaded) s.balance = std::stod(m["balance"]);
            if (m.count("currency")) s.currency = m["currency"];
            if (m.count("server")) s.server = m["server"];
            if (m.count("company")) s.company = m["company"];
            if (m.count("trade")) s.account_trade = m["trade"] != "0";
        } else if (w[0] == "symbol" && w.size() > 1) {
            Symbol &sym = s.symbols[w[1]];
            if (m.count("bid")) sym.bid = std::stod(m["bid"]);
            if (m.count("ask")) sym.ask = std::stod(m["ask"]);
            if (m.count("digits")) sym.digits = std::stoi(m["digits"]);
            sym.point = std::pow(10.0, -sym.digits);
            if (m.count("vol_min")) sym.vol_min = std::stod(m["vol_min"]);
            if (m.count("vol_max")) sym.vol_max = std::stod(m["vol_max"]);
            if (m.count("vol_step")) sym.vol_step = std::stod(m["vol_step"]);
            if (m.count("contract")) sym.contract = std::stod(m["contract"]);
            if (m.count("trade")) sym.trade = m["trade"] != "0";
        }
    }
}

inline void load_state(Server &s) {
    std::vector<std::string> lines;
    if (s.state_path.empty() || !read_lines(s.state_path, lines)) return;
    s.loaded = true;
    for (auto &line : lines) {
        auto w = split_words(line);
        if (w.empty()) continue;
        if (w[0] == "next" && w.size() == 2) s.next_ticket = std::stoul(w[1]);
        if (w[0] == "balance" && w.size() == 2) s.balance = std::stod(w[1]);
        if (w[0] == "pos" && w.size() == 12) {
            Position p;
            p.ticket = std::stoul(w[1]), p.identifier = std::stoul(w[2]), p.symbol = w[3], p.type = std::stoi(w[4]);
            p.volume = std::stod(w[5]), p.price_open = std::stod(w[6]), p.sl = std::stod(w[7]), p.tp = std::stod(w[8]);
            p.magic = std::stoul(w[9]), p.time_msc = std::stol(w[10]), p.comment = hex_decode(w[11]);
            s.positions.push_back(p);
        }
        if (w[0] == "order" && w.size() == 11) {
            Order o;
            o.ticket = std::stoul(w[1]), o.symbol = w[2], o.type = std::stoi(w[3]), o.volume = std::stod(w[4]);
            o.price = std::stod(w[5]), o.magic = std::stoul(w[6]), o.state = std::stoi(w[7]);
            o.time_msc = std::stol(w[8]), o.position = std::stoul(w[9]), o.comment = hex_decode(w[10]);
            s.orders.push_back(o);
        }
        if (w[0] == "pend" && w.size() == 12) {
            Order o;
            o.ticket = std::stoul(w[1]), o.symbol = w[2], o.type = std::stoi(w[3]), o.volume = std::stod(w[4]);
            o.price = std::stod(w[5]), o.sl = std::stod(w[6]), o.tp = std::stod(w[7]), o.magic = std::stoul(w[8]);
            o.expiration = std::stol(w[9]), o.time_msc = std::stol(w[10]), o.comment = hex_decode(w[11]);
            o.state = ORDER_STATE_PLACED;
            s.pending.push_back(o);
        }
        if (w[0] == "deal" && w.size() == 13) {
            Deal d;
            d.ticket = std::stoul(w[1]), d.order = std::stoul(w[2]), d.symbol = w[3], d.type = std::stoi(w[4]);
            d.entry = std::stoi(w[5]), d.volume = std::stod(w[6]), d.price = std::stod(w[7]), d.profit = std::stod(w[8]);
            d.magic = std::stoul(w[9]), d.position = std::stoul(w[10]), d.time_msc = std::stol(w[11]);
            d.comment = hex_decode(w[12]);
            s.deals.push_back(d);
        }
    }
}

inline void save_state(Server &s) {
    if (s.state_path.empty()) return;
    std::string tmp = s.state_path + ".tmp";
    FILE *f = std::fopen(tmp.c_str(), "wb");
    if (!f) fatal("trade simulator: cannot write its state file");
    std::fprintf(f, "next %lu\nbalance %.10g\n", s.next_ticket, s.balance);
    for (auto &p : s.positions)
        std::fprintf(f, "pos %lu %lu %s %d %.10g %.10g %.10g %.10g %lu %ld %s\n", p.ticket, p.identifier, p.symbol.c_str(),
                     p.type, p.volume, p.price_open, p.sl, p.tp, p.magic, p.time_msc, hex_encode(p.comment).c_str());
    for (auto &o : s.orders)
        std::fprintf(f, "order %lu %s %d %.10g %.10g %lu %d %ld %lu %s\n", o.ticket, o.symbol.c_str(), o.type, o.volume,
                     o.price, o.magic, o.state, o.time_msc, o.position, hex_encode(o.comment).c_str());
    for (auto &o : s.pending)
        std::fprintf(f, "pend %lu %s %d %.10g %.10g %.10g %.10g %lu %ld %ld %s\n", o.ticket, o.symbol.c_str(), o.type,
                     o.volume, o.price, o.sl, o.tp, o.magic, o.expiration, o.time_msc, hex_encode(o.comment).c_str());
    for (auto &d : s.deals)
        std::fprintf(f, "deal %lu %lu %s %d %d %.10g %.10g %.10g %lu %lu %ld %s\n", d.ticket, d.order, d.symbol.c_str(),
                     d.type, d.entry, d.volume, d.price, d.profit, d.magic, d.position, d.time_msc,
                     hex_encode(d.comment).c_str());
    std::fflush(f);
    ::fsync(::fileno(f));
    std::fclose(f);
    if (::rename(tmp.c_str(), s.state_path.c_str()) != 0) fatal("trade simulator: cannot replace its state file");
}

inline Server &srv() {
    static Server s;
    static bool init = false;
    if (!init) {
        init = true;
        s.config_path = env_str("MQL_TRADE_CONFIG");
        s.state_path = env_str("MQL_TRADE_STATE");
        if (s.config_path.empty()) {
            Symbol eur;
            eur.bid = 1.10000, eur.ask = 1.10020;
            s.symbols["EURUSD"] = eur;
        }
        load_state(s);
    }
    load_config(s);
    return s;
}
inline Symbol *symbol(const std::string &name) {
    Server &s = srv();
    auto it = s.symbols.find(name);
    return it == s.symbols.end() ? nullptr : &it->second;
}
inline double floating_profit(const Position &p) {
    Symbol *sym = symbol(p.symbol);
    if (!sym) return 0;
    double close = p.type == 0 ? sym->bid : sym->ask;
    return (p.type == 0 ? close - p.price_open : p.price_open - close) * p.volume * sym->contract;
}
inline double round2(double v) { return std::round(v * 100.0) / 100.0; }

inline void push_event(Server &s, const MqlTradeTransaction &tx) {
    TxEvent e;
    e.tx = tx;
    s.events.push_back(e);
}
inline MqlTradeTransaction order_tx(const Order &o, ENUM_TRADE_TRANSACTION_TYPE type, int state) {
    MqlTradeTransaction tx;
    tx.type = type;
    tx.symbol = from_std(o.symbol);
    tx.order = o.ticket;
    tx.order_type = ENUM_ORDER_TYPE(o.type);
    tx.order_state = ENUM_ORDER_STATE(state);
    tx.volume = o.volume;
    tx.price = o.price;
    tx.price_sl = o.sl;
    tx.price_tp = o.tp;
    tx.position = o.position;
    return tx;
}

// A pending order leaves the book without a fill (cancelled or expired): into the history.
inline void end_pending(Server &s, size_t index, int state) {
    Order o = s.pending[index];
    s.pending.erase(s.pending.begin() + long(index));
    o.state = state;
    o.time_msc = now_unix_ms();
    s.orders.push_back(o);
    save_state(s);
    push_event(s, order_tx(o, TRADE_TRANSACTION_ORDER_DELETE, state));
    push_event(s, order_tx(o, TRADE_TRANSACTION_HISTORY_ADD, state));
}

// The market reached a pending order: a limit order fills at its own price, a stop order at the market.
inline void fill_pending(Server &s, size_t index, double price) {
    Order o = s.pending[index];
    s.pending.erase(s.pending.begin() + long(index));
    bool buy = o.type == ORDER_TYPE_BUY_LIMIT || o.type == ORDER_TYPE_BUY_STOP;
    long now = now_unix_ms();
    Deal d;
    d.ticket = s.next_ticket++;
    d.order = o.ticket, d.symbol = o.symbol, d.type = buy ? DEAL_TYPE_BUY : DEAL_TYPE_SELL, d.entry = DEAL_ENTRY_IN;
    d.volume = o.volume, d.price = price, d.magic = o.magic, d.time_msc = now, d.comment = o.comment;
    Position p;
    p.ticket = o.ticket, p.identifier = o.ticket, p.symbol = o.symbol, p.type = buy ? 0 : 1;
    p.volume = o.volume, p.price_open = price, p.sl = o.sl, p.tp = o.tp, p.magic = o.magic;
    p.time_msc = now, p.comment = o.comment;
    d.position = p.identifier;
    o.position = p.identifier, o.state = ORDER_STATE_FILLED, o.time_msc = now;
    s.positions.push_back(p);
    s.orders.push_back(o);
    s.deals.push_back(d);
    save_state(s);
    MqlTradeTransaction dt = order_tx(o, TRADE_TRANSACTION_DEAL_ADD, ORDER_STATE_FILLED);
    dt.deal = d.ticket;
    dt.deal_type = ENUM_DEAL_TYPE(d.type);
    dt.price = price;
    push_event(s, dt);
    push_event(s, order_tx(o, TRADE_TRANSACTION_ORDER_DELETE, ORDER_STATE_FILLED));
    push_event(s, order_tx(o, TRADE_TRANSACTION_HISTORY_ADD, ORDER_STATE_FILLED));
}

// Called by the event loop (and so after every change of the configured prices): expiries first, then
// triggers, in the order the orders were placed. Prices do not tick by themselves.
inline void check_pending() {
    Server &s = srv();
    long now_s = long(TimeCurrent());  // expirations are server time
    size_t i = 0;
    while (i < s.pending.size()) {
        Order &o = s.pending[i];
        if (o.expiration > 0 && now_s >= o.expiration) {
            end_pending(s, i, ORDER_STATE_EXPIRED);
            continue;
        }
        Symbol *sym = symbol(o.symbol);
        if (!sym || !sym->trade || !s.account_trade) {
            ++i;
            continue;
        }
        bool fill = false;
        double price = o.price;
        switch (o.type) {
            case ORDER_TYPE_BUY_LIMIT: fill = sym->ask <= o.price; break;
            case ORDER_TYPE_SELL_LIMIT: fill = sym->bid >= o.price; break;
            case ORDER_TYPE_BUY_STOP: fill = sym->ask >= o.price, price = sym->ask; break;
            case ORDER_TYPE_SELL_STOP: fill = sym->bid <= o.price, price = sym->bid; break;
            default: break;
        }
        if (fill)
            fill_pending(s, i, price);
        else
            ++i;
    }
}

}  // namespace sim

// ---------------------------------------------------------------- symbol and account info
inline bool SymbolSelect(const string &name, bool select) {
    (void)select;
    return sim::symbol(to_std(name)) != nullptr;
}
inline bool SymbolExist(const string &name, bool &is_custom) {
    is_custom = false;
    return sim::symbol(to_std(name)) != nullptr;
}
inline bool SymbolInfoDouble(const string &name, ENUM_SYMBOL_INFO_DOUBLE prop, double &out) {
    sim::Symbol *s = sim::symbol(to_std(name));
    if (!s) {
        set_err(4301);  // ERR_MARKET_UNKNOWN_SYMBOL
        return false;
    }
    switch (prop) {
        case SYMBOL_BID: out = s->bid; break;
        case SYMBOL_ASK: out = s->ask; break;
        case SYMBOL_POINT: out = s->point; break;
        case SYMBOL_VOLUME_MIN: out = s->vol_min; break;
        case SYMBOL_VOLUME_MAX: out = s->vol_max; break;
        case SYMBOL_VOLUME_STEP: out = s->vol_step; break;
        case SYMBOL_TRADE_CONTRACT_SIZE: out = s->contract; break;
        case SYMBOL_TRADE_TICK_SIZE: out = s->point; break;
        case SYMBOL_TRADE_TICK_VALUE: out = s->point * s->contract; break;
    }
    return true;
}
inline double SymbolInfoDouble(const string &name, ENUM_SYMBOL_INFO_DOUBLE prop) {
    double v = 0;
    SymbolInfoDouble(name, prop, v);
    return v;
}
inline bool SymbolInfoInteger(const string &name, ENUM_SYMBOL_INFO_INTEGER prop, long &out) {
    sim::Symbol *s = sim::symbol(to_std(name));
    if (!s) {
        set_err(4301);
        return false;
    }
    switch (prop) {
        case SYMBOL_DIGITS: out = s->digits; break;
        case SYMBOL_TRADE_MODE: out = s->trade ? SYMBOL_TRADE_MODE_FULL : SYMBOL_TRADE_MODE_DISABLED; break;
        case SYMBOL_SPREAD: out = long(std::llround((s->ask - s->bid) / s->point)); break;
        case SYMBOL_TIME: out = long(TimeCurrent()); break;
        case SYMBOL_FILLING_MODE: out = SYMBOL_FILLING_FOK | SYMBOL_FILLING_IOC; break;
    }
    return true;
}
inline long SymbolInfoInteger(const string &name, ENUM_SYMBOL_INFO_INTEGER prop) {
    long v = 0;
    SymbolInfoInteger(name, prop, v);
    return v;
}
inline bool SymbolInfoTick(const string &name, MqlTick &tick) {
    sim::Symbol *s = sim::symbol(to_std(name));
    if (!s) return false;
    tick.bid = s->bid, tick.ask = s->ask, tick.last = 0, tick.time = TimeCurrent(), tick.time_msc = now_unix_ms();
    return true;
}

inline long AccountInfoInteger(ENUM_ACCOUNT_INFO_INTEGER prop) {
    sim::Server &s = sim::srv();
    switch (prop) {
        case ACCOUNT_LOGIN: return s.login;
        case ACCOUNT_LEVERAGE: return s.leverage;
        case ACCOUNT_TRADE_ALLOWED: return s.account_trade;
        case ACCOUNT_TRADE_EXPERT: return 1;
        case ACCOUNT_MARGIN_MODE: return ACCOUNT_MARGIN_MODE_RETAIL_HEDGING;
    }
    return 0;
}
inline double AccountInfoDouble(ENUM_ACCOUNT_INFO_DOUBLE prop) {
    sim::Server &s = sim::srv();
    double profit = 0, margin = 0;
    for (auto &p : s.positions) {
        profit += sim::floating_profit(p);
        sim::Symbol *sym = sim::symbol(p.symbol);
        if (sym) margin += p.volume * sym->contract * p.price_open / double(s.leverage ? s.leverage : 1);
    }
    profit = sim::round2(profit);
    margin = sim::round2(margin);
    double equity = s.balance + profit;
    switch (prop) {
        case ACCOUNT_BALANCE: return s.balance;
        case ACCOUNT_CREDIT: return 0;
        case ACCOUNT_PROFIT: return profit;
        case ACCOUNT_EQUITY: return equity;
        case ACCOUNT_MARGIN: return margin;
        case ACCOUNT_MARGIN_FREE: return equity - margin;
        case ACCOUNT_MARGIN_LEVEL: return margin > 0 ? equity / margin * 100.0 : 0;
    }
    return 0;
}
inline string AccountInfoString(ENUM_ACCOUNT_INFO_STRING prop) {
    sim::Server &s = sim::srv();
    switch (prop) {
        case ACCOUNT_NAME: return from_std(s.name);
        case ACCOUNT_SERVER: return from_std(s.server);
        case ACCOUNT_CURRENCY: return from_std(s.currency);
        case ACCOUNT_COMPANY: return from_std(s.company);
    }
    return string();
}
inline long TerminalInfoInteger(ENUM_TERMINAL_INFO_INTEGER prop) {
    (void)prop;
    return 1;
}
inline long MQLInfoInteger(ENUM_MQL_INFO_INTEGER prop) {
    return prop == MQL_TRADE_ALLOWED ? 1 : 0;
}

// ---------------------------------------------------------------- positions
inline int PositionsTotal() { return int(sim::srv().positions.size()); }
inline ulong PositionGetTicket(int index) {
    sim::Server &s = sim::srv();
    if (index < 0 || size_t(index) >= s.positions.size()) {
        s.selected_position = -1;
        return 0;
    }
    s.selected_position = long(s.positions[size_t(index)].ticket);
    return s.positions[size_t(index)].ticket;
}
inline bool PositionSelectByTicket(ulong ticket) {
    sim::Server &s = sim::srv();
    for (auto &p : s.positions)
        if (p.ticket == ticket) {
            s.selected_position = long(ticket);
            return true;
        }
    s.selected_position = -1;
    return false;
}
inline bool PositionSelect(const string &symbol) {
    sim::Server &s = sim::srv();
    std::string name = to_std(symbol);
    for (auto &p : s.positions)
        if (p.symbol == name) {
            s.selected_position = long(p.ticket);
            return true;
        }
    return false;
}
inline sim::Position *selected_position() {
    sim::Server &s = sim::srv();
    for (auto &p : s.positions)
        if (long(p.ticket) == s.selected_position) return &p;
    return nullptr;
}
inline long PositionGetInteger(ENUM_POSITION_PROPERTY_INTEGER prop) {
    sim::Position *p = selected_position();
    if (!p) return 0;
    switch (prop) {
        case POSITION_TICKET: return long(p->ticket);
        case POSITION_TIME: return p->time_msc / 1000;
        case POSITION_TIME_MSC: return p->time_msc;
        case POSITION_TYPE: return p->type;
        case POSITION_MAGIC: return long(p->magic);
        case POSITION_IDENTIFIER: return long(p->identifier);
    }
    return 0;
}
inline double PositionGetDouble(ENUM_POSITION_PROPERTY_DOUBLE prop) {
    sim::Position *p = selected_position();
    if (!p) return 0;
    sim::Symbol *sym = sim::symbol(p->symbol);
    switch (prop) {
        case POSITION_VOLUME: return p->volume;
        case POSITION_PRICE_OPEN: return p->price_open;
        case POSITION_SL: return p->sl;
        case POSITION_TP: return p->tp;
        case POSITION_PRICE_CURRENT: return sym ? (p->type == 0 ? sym->bid : sym->ask) : 0;
        case POSITION_SWAP: return 0;
        case POSITION_PROFIT: return sim::round2(sim::floating_profit(*p));
    }
    return 0;
}
inline string PositionGetString(ENUM_POSITION_PROPERTY_STRING prop) {
    sim::Position *p = selected_position();
    if (!p) return string();
    return from_std(prop == POSITION_SYMBOL ? p->symbol : p->comment);
}

// ---------------------------------------------------------------- history
inline bool HistorySelect(datetime from, datetime to) {
    (void)from;
    (void)to;
    return true;  // the simulator's history is small: every deal and order is always selected
}
inline int HistoryDealsTotal() { return int(sim::srv().deals.size()); }
inline ulong HistoryDealGetTicket(int index) {
    sim::Server &s = sim::srv();
    if (index < 0 || size_t(index) >= s.deals.size()) return 0;
    return s.deals[size_t(index)].ticket;
}
inline sim::Deal *find_deal(ulong ticket) {
    for (auto &d : sim::srv().deals)
        if (d.ticket == ticket) return &d;
    return nullptr;
}
inline bool HistoryDealSelect(ulong ticket) { return find_deal(ticket) != nullptr; }
inline long HistoryDealGetInteger(ulong ticket, ENUM_DEAL_PROPERTY_INTEGER prop) {
    sim::Deal *d = find_deal(ticket);
    if (!d) return 0;
    switch (prop) {
        case DEAL_TICKET: return long(d->ticket);
        case DEAL_ORDER: return long(d->order);
        case DEAL_TIME: return d->time_msc / 1000;
        case DEAL_TIME_MSC: return d->time_msc;
        case DEAL_TYPE: return d->type;
        case DEAL_ENTRY: return d->entry;
        case DEAL_MAGIC: return long(d->magic);
        case DEAL_POSITION_ID: return long(d->position);
    }
    return 0;
}
inline double HistoryDealGetDouble(ulong ticket, ENUM_DEAL_PROPERTY_DOUBLE prop) {
    sim::Deal *d = find_deal(ticket);
    if (!d) return 0;
    switch (prop) {
        case DEAL_VOLUME: return d->volume;
        case DEAL_PRICE: return d->price;
        case DEAL_PROFIT: return d->profit;
        default: return 0;
    }
}
inline string HistoryDealGetString(ulong ticket, ENUM_DEAL_PROPERTY_STRING prop) {
    sim::Deal *d = find_deal(ticket);
    if (!d) return string();
    return from_std(prop == DEAL_SYMBOL ? d->symbol : d->comment);
}
inline int HistoryOrdersTotal() { return int(sim::srv().orders.size()); }
inline ulong HistoryOrderGetTicket(int index) {
    sim::Server &s = sim::srv();
    if (index < 0 || size_t(index) >= s.orders.size()) return 0;
    return s.orders[size_t(index)].ticket;
}
inline sim::Order *find_order(ulong ticket) {
    for (auto &o : sim::srv().orders)
        if (o.ticket == ticket) return &o;
    return nullptr;
}
inline bool HistoryOrderSelect(ulong ticket) { return find_order(ticket) != nullptr; }
inline long HistoryOrderGetInteger(ulong ticket, ENUM_ORDER_PROPERTY_INTEGER prop) {
    sim::Order *o = find_order(ticket);
    if (!o) return 0;
    switch (prop) {
        case ORDER_TICKET: return long(o->ticket);
        case ORDER_TIME_SETUP:
        case ORDER_TIME_DONE: return o->time_msc / 1000;
        case ORDER_TIME_SETUP_MSC:
        case ORDER_TIME_DONE_MSC: return o->time_msc;
        case ORDER_TYPE: return o->type;
        case ORDER_STATE: return o->state;
        case ORDER_MAGIC: return long(o->magic);
        case ORDER_POSITION_ID: return long(o->position);
        case ORDER_TYPE_TIME: return o->expiration > 0 ? ORDER_TIME_SPECIFIED : ORDER_TIME_GTC;
        case ORDER_TIME_EXPIRATION: return o->expiration;
    }
    return 0;
}
inline double HistoryOrderGetDouble(ulong ticket, ENUM_ORDER_PROPERTY_DOUBLE prop) {
    sim::Order *o = find_order(ticket);
    if (!o) return 0;
    switch (prop) {
        case ORDER_VOLUME_INITIAL: return o->volume;
        case ORDER_VOLUME_CURRENT: return 0;
        case ORDER_PRICE_OPEN:
        case ORDER_PRICE_CURRENT: return o->price;
        case ORDER_SL: return o->sl;
        case ORDER_TP: return o->tp;
        default: return 0;
    }
}
inline string HistoryOrderGetString(ulong ticket, ENUM_ORDER_PROPERTY_STRING prop) {
    sim::Order *o = find_order(ticket);
    if (!o) return string();
    return from_std(prop == ORDER_SYMBOL ? o->symbol : o->comment);
}
// ---------------------------------------------------------------- active (pending) orders
inline int OrdersTotal() { return int(sim::srv().pending.size()); }
inline sim::Order *selected_pending() {
    sim::Server &s = sim::srv();
    for (auto &o : s.pending)
        if (o.ticket == s.selected_pending) return &o;
    return nullptr;
}
inline ulong OrderGetTicket(int index) {
    sim::Server &s = sim::srv();
    if (index < 0 || size_t(index) >= s.pending.size()) {
        s.selected_pending = 0;
        return 0;
    }
    s.selected_pending = s.pending[size_t(index)].ticket;
    return s.selected_pending;
}
inline bool OrderSelect(ulong ticket) {
    sim::Server &s = sim::srv();
    for (auto &o : s.pending)
        if (o.ticket == ticket) {
            s.selected_pending = ticket;
            return true;
        }
    s.selected_pending = 0;
    return false;
}
inline long OrderGetInteger(ENUM_ORDER_PROPERTY_INTEGER prop) {
    sim::Order *o = selected_pending();
    if (!o) return 0;
    switch (prop) {
        case ORDER_TICKET: return long(o->ticket);
        case ORDER_TIME_SETUP: return o->time_msc / 1000;
        case ORDER_TIME_SETUP_MSC: return o->time_msc;
        case ORDER_TIME_DONE:
        case ORDER_TIME_DONE_MSC: return 0;
        case ORDER_TYPE: return o->type;
        case ORDER_STATE: return o->state;
        case ORDER_MAGIC: return long(o->magic);
        case ORDER_POSITION_ID: return 0;
        case ORDER_TYPE_TIME: return o->expiration > 0 ? ORDER_TIME_SPECIFIED : ORDER_TIME_GTC;
        case ORDER_TIME_EXPIRATION: return o->expiration;
    }
    return 0;
}
inline double OrderGetDouble(ENUM_ORDER_PROPERTY_DOUBLE prop) {
    sim::Order *o = selected_pending();
    if (!o) return 0;
    sim::Symbol *sym = sim::symbol(o->symbol);
    switch (prop) {
        case ORDER_VOLUME_INITIAL:
        case ORDER_VOLUME_CURRENT: return o->volume;
        case ORDER_PRICE_OPEN: return o->price;
        case ORDER_SL: return o->sl;
        case ORDER_TP: return o->tp;
        case ORDER_PRICE_CURRENT: return sym ? ((o->type % 2 == 0) ? sym->ask : sym->bid) : 0;
    }
    return 0;
}
inline string OrderGetString(ENUM_ORDER_PROPERTY_STRING prop) {
    sim::Order *o = selected_pending();
    if (!o) return string();
    return from_std(prop == ORDER_SYMBOL ? o->symbol : o->comment);
}

// ---------------------------------------------------------------- OrderSend
inline void push_tx(const MqlTradeTransaction &tx) {
    sim::TxEvent e;
    e.tx = tx;
    sim::srv().events.push_back(e);
}

inline bool OrderSend(const MqlTradeRequest &req, MqlTradeResult &res) {
    sim::Server &s = sim::srv();
    res = MqlTradeResult();
    auto fail = [&](uint code, const char *why) {
        res.retcode = code;
        res.comment = from_std(why);
        set_err(4756);  // ERR_TRADE_SEND_FAILED
        sim::TxEvent e;
        e.tx.type = TRADE_TRANSACTION_REQUEST;
        e.req = req;
        e.res = res;
        s.events.push_back(e);
        return false;
    };
    std::string symname = to_std(req.symbol);
    sim::Position *closing = nullptr;
    if (req.action == TRADE_ACTION_SLTP) {
        for (auto &p : s.positions)
            if (p.ticket == req.position) closing = &p;
        if (!closing) return fail(TRADE_RETCODE_POSITION_CLOSED, "position not found");
        closing->sl = req.sl;
        closing->tp = req.tp;
        sim::save_state(s);  // an SL/TP change creates no order: no ticket is used
        MqlTradeTransaction tx;
        tx.type = TRADE_TRANSACTION_POSITION;
        tx.symbol = from_std(closing->symbol);
        tx.position = closing->ticket;
        tx.price_sl = req.sl;
        tx.price_tp = req.tp;
        tx.volume = closing->volume;
        push_tx(tx);
        res.retcode = TRADE_RETCODE_DONE;
        sim::TxEvent e;
        e.tx.type = TRADE_TRANSACTION_REQUEST;
        e.req = req;
        e.res = res;
        s.events.push_back(e);
        return true;
    }
    if (req.action == TRADE_ACTION_PENDING) {
        if (req.type < ORDER_TYPE_BUY_LIMIT || req.type > ORDER_TYPE_SELL_STOP)
            return fail(TRADE_RETCODE_INVALID, "only limit and stop orders are simulated");
        sim::Symbol *sym = sim::symbol(symname);
        if (!sym) return fail(TRADE_RETCODE_INVALID, "unknown symbol");
        if (!s.account_trade || !sym->trade) return fail(TRADE_RETCODE_TRADE_DISABLED, "trade disabled");
        double steps = req.volume / sym->vol_step;
        if (req.volume < sym->vol_min - 1e-9 || req.volume > sym->vol_max + 1e-9 ||
            std::fabs(steps - std::round(steps)) > 1e-6)
            return fail(TRADE_RETCODE_INVALID_VOLUME, "invalid volume");
        // a limit order waits for a better price, a stop order for a worse one: on the wrong side of the
        // market it would fill at once, which a real server refuses
        bool buy = req.type == ORDER_TYPE_BUY_LIMIT || req.type == ORDER_TYPE_BUY_STOP;
        bool limit = req.type == ORDER_TYPE_BUY_LIMIT || req.type == ORDER_TYPE_SELL_LIMIT;
        double market = buy ? sym->ask : sym->bid;
        bool ok_side = limit ? (buy ? req.price < market : req.price > market) : (buy ? req.price > market : req.price < market);
        if (req.price <= 0 || !ok_side) return fail(TRADE_RETCODE_INVALID_PRICE, "invalid price");
        long expiration = 0;
        if (req.type_time == ORDER_TIME_SPECIFIED) {
            // expirations are server time (TimeCurrent), as in MT5
            if (long(req.expiration) <= long(TimeCurrent())) return fail(TRADE_RETCODE_INVALID_EXPIRATION, "invalid expiration");
            expiration = long(req.expiration);
        } else if (req.type_time != ORDER_TIME_GTC) {
            return fail(TRADE_RETCODE_INVALID_EXPIRATION, "only GTC and specified expiration are simulated");
        }
        sim::Order o;
        o.ticket = s.next_ticket++;
        o.symbol = symname, o.type = req.type, o.volume = req.volume, o.price = req.price, o.sl = req.sl, o.tp = req.tp;
        o.magic = req.magic, o.state = ORDER_STATE_PLACED, o.time_msc = now_unix_ms(), o.expiration = expiration;
        o.comment = to_std(req.comment);
        s.pending.push_back(o);
        sim::save_state(s);
        MqlTradeTransaction tx;
        tx.symbol = from_std(symname);
        tx.order = o.ticket;
        tx.order_type = req.type;
        tx.volume = req.volume;
        tx.price = req.price;
        tx.price_sl = req.sl;
        tx.price_tp = req.tp;
        tx.time_type = req.type_time;
        tx.time_expiration = datetime(expiration);
        tx.type = TRADE_TRANSACTION_ORDER_ADD;
        tx.order_state = ORDER_STATE_STARTED;
        push_tx(tx);
        tx.type = TRADE_TRANSACTION_ORDER_UPDATE;
        tx.order_state = ORDER_STATE_PLACED;
        push_tx(tx);
        res.retcode = TRADE_RETCODE_DONE;
        res.order = o.ticket;
        res.volume = req.volume;
        res.price = req.price;
        res.bid = sym->bid;
        res.ask = sym->ask;
        res.comment = string(u"Request executed");
        sim::TxEvent e;
        e.tx.type = TRADE_TRANSACTION_REQUEST;
        e.req = req;
        e.res = res;
        s.events.push_back(e);
        return true;
    }
    if (req.action == TRADE_ACTION_REMOVE) {
        size_t i = 0;
        while (i < s.pending.size() && s.pending[i].ticket != req.order) ++i;
        if (i == s.pending.size()) return fail(TRADE_RETCODE_INVALID_ORDER, "order not found");
        sim::end_pending(s, i, ORDER_STATE_CANCELED);
        res.retcode = TRADE_RETCODE_DONE;
        res.order = req.order;
        sim::TxEvent e;
        e.tx.type = TRADE_TRANSACTION_REQUEST;
        e.req = req;
        e.res = res;
        s.events.push_back(e);
        return true;
    }
    if (req.action != TRADE_ACTION_DEAL) return fail(TRADE_RETCODE_INVALID, "action not simulated");
    if (req.type != ORDER_TYPE_BUY && req.type != ORDER_TYPE_SELL) return fail(TRADE_RETCODE_INVALID, "invalid order type");
    if (req.position) {
        for (auto &p : s.positions)
            if (p.ticket == req.position) closing = &p;
        if (!closing) return fail(TRADE_RETCODE_POSITION_CLOSED, "position not found");
        if (symname.empty()) symname = closing->symbol;
    }
    sim::Symbol *sym = sim::symbol(symname);
    if (!sym) return fail(TRADE_RETCODE_INVALID, "unknown symbol");
    if (!s.account_trade || !sym->trade) return fail(TRADE_RETCODE_TRADE_DISABLED, "trade disabled");
    double steps = req.volume / sym->vol_step;
    if (req.volume < sym->vol_min - 1e-9 || req.volume > sym->vol_max + 1e-9 || std::fabs(steps - std::round(steps)) > 1e-6)
        return fail(TRADE_RETCODE_INVALID_VOLUME, "invalid volume");
    if (closing && req.volume > closing->volume + 1e-9) return fail(TRADE_RETCODE_INVALID_VOLUME, "volume exceeds position");
    double price = req.type == ORDER_TYPE_BUY ? sym->ask : sym->bid;
    if (req.price > 0 && std::fabs(req.price - price) > double(req.deviation) * sym->point + 1e-12)
        return fail(TRADE_RETCODE_REQUOTE, "requote");
    long now = now_unix_ms();
    sim::Order o;
    o.ticket = s.next_ticket++;
    o.symbol = symname, o.type = req.type, o.volume = req.volume, o.price = price, o.magic = req.magic;
    o.state = ORDER_STATE_FILLED, o.time_msc = now, o.comment = to_std(req.comment);
    sim::Deal d;
    d.ticket = s.next_ticket++;
    d.order = o.ticket, d.symbol = symname, d.type = req.type == ORDER_TYPE_BUY ? DEAL_TYPE_BUY : DEAL_TYPE_SELL;
    d.volume = req.volume, d.price = price, d.magic = req.magic, d.time_msc = now, d.comment = o.comment;
    if (closing) {
        d.entry = DEAL_ENTRY_OUT;
        d.position = closing->identifier;
        double pl = (closing->type == 0 ? price - closing->price_open : closing->price_open - price) * req.volume * sym->contract;
        d.profit = sim::round2(pl);
        s.balance = sim::round2(s.balance + d.profit);
        closing->volume -= req.volume;
        if (closing->volume <= 1e-9) {
            ulong t = closing->ticket;
            s.positions.erase(std::remove_if(s.positions.begin(), s.positions.end(),
                                             [t](const sim::Position &p) { return p.ticket == t; }),
                              s.positions.end());
        }
    } else {
        d.entry = DEAL_ENTRY_IN;
        sim::Position p;
        p.ticket = o.ticket, p.identifier = o.ticket, p.symbol = symname, p.type = req.type;
        p.volume = req.volume, p.price_open = price, p.sl = req.sl, p.tp = req.tp, p.magic = req.magic;
        p.time_msc = now, p.comment = o.comment;
        s.positions.push_back(p);
        d.position = p.identifier;
    }
    o.position = d.position;
    s.orders.push_back(o);
    s.deals.push_back(d);
    sim::save_state(s);

    MqlTradeTransaction tx;
    tx.symbol = from_std(symname);
    tx.order = o.ticket;
    tx.order_type = req.type;
    tx.volume = req.volume;
    tx.price = price;
    tx.position = d.position;
    tx.type = TRADE_TRANSACTION_ORDER_ADD;
    tx.order_state = ORDER_STATE_STARTED;
    push_tx(tx);
    MqlTradeTransaction dt = tx;
    dt.type = TRADE_TRANSACTION_DEAL_ADD;
    dt.deal = d.ticket;
    dt.deal_type = ENUM_DEAL_TYPE(d.type);
    push_tx(dt);
    tx.type = TRADE_TRANSACTION_ORDER_DELETE;
    tx.order_state = ORDER_STATE_FILLED;
    push_tx(tx);
    tx.type = TRADE_TRANSACTION_HISTORY_ADD;
    push_tx(tx);

    res.retcode = TRADE_RETCODE_DONE;
    res.deal = d.ticket;
    res.order = o.ticket;
    res.volume = req.volume;
    res.price = price;
    res.bid = sym->bid;
    res.ask = sym->ask;
    res.comment = string(u"Request executed");
    sim::TxEvent e;
    e.tx.type = TRADE_TRANSACTION_REQUEST;
    e.req = req;
    e.res = res;
    s.events.push_back(e);
    return true;
}

// ---------------------------------------------------------------- CTrade stand-in (our own code)
class CTrade {
  protected:
    ulong m_magic = 0;
    ulong m_deviation = 10;
    ENUM_ORDER_TYPE_FILLING m_filling = ORDER_FILLING_FOK;
    MqlTradeRequest m_request;
    MqlTradeResult m_result;

    bool send(MqlTradeRequest &req) {
        req.magic = m_magic;
        req.deviation = m_deviation;
        req.type_filling = m_filling;
        m_request = req;
        return OrderSend(req, m_result) && m_result.retcode == TRADE_RETCODE_DONE;
    }

  public:
    virtual ~CTrade() {}
    void SetExpertMagicNumber(ulong magic) { m_magic = magic; }
    void SetDeviationInPoints(ulong points) { m_deviation = points; }
    void SetTypeFilling(ENUM_ORDER_TYPE_FILLING filling) { m_filling = filling; }
    bool SetTypeFillingBySymbol(const string &symbol) {
        (void)symbol;
        m_filling = ORDER_FILLING_FOK;
        return true;
    }
    void SetAsyncMode(bool) {}
    void LogLevel(int) {}
    bool PositionOpen(const string &symbol, ENUM_ORDER_TYPE type, double volume, double price, double sl, double tp,
                      const string &comment = string()) {
        MqlTradeRequest r;
        r.action = TRADE_ACTION_DEAL;
        r.symbol = symbol, r.type = type, r.volume = volume, r.price = price, r.sl = sl, r.tp = tp, r.comment = comment;
        return send(r);
    }
    bool Buy(double volume, const string &symbol = string(), double price = 0.0, double sl = 0.0, double tp = 0.0,
             const string &comment = string()) {
        return PositionOpen(symbol, ORDER_TYPE_BUY, volume, price, sl, tp, comment);
    }
    bool Sell(double volume, const string &symbol = string(), double price = 0.0, double sl = 0.0, double tp = 0.0,
              const string &comment = string()) {
        return PositionOpen(symbol, ORDER_TYPE_SELL, volume, price, sl, tp, comment);
    }
    bool PositionClose(ulong ticket, ulong deviation = ULONG_MAX) {
        if (!PositionSelectByTicket(ticket)) {
            m_result = MqlTradeResult();
            m_result.retcode = TRADE_RETCODE_POSITION_CLOSED;
            return false;
        }
        sim::Position *p = selected_position();
        MqlTradeRequest r;
        r.action = TRADE_ACTION_DEAL;
        r.symbol = from_std(p->symbol);
        r.type = p->type == 0 ? ORDER_TYPE_SELL : ORDER_TYPE_BUY;
        r.volume = p->volume;
        r.position = ticket;
        ulong keep = m_deviation;
        if (deviation != ULONG_MAX) m_deviation = deviation;
        bool ok = send(r);
        m_deviation = keep;
        return ok;
    }
    bool PositionClosePartial(ulong ticket, double volume, ulong deviation = ULONG_MAX) {
        if (!PositionSelectByTicket(ticket)) return false;
        sim::Position *p = selected_position();
        MqlTradeRequest r;
        r.action = TRADE_ACTION_DEAL;
        r.symbol = from_std(p->symbol);
        r.type = p->type == 0 ? ORDER_TYPE_SELL : ORDER_TYPE_BUY;
        r.volume = volume;
        r.position = ticket;
        ulong keep = m_deviation;
        if (deviation != ULONG_MAX) m_deviation = deviation;
        bool ok = send(r);
        m_deviation = keep;
        return ok;
    }
    bool PositionModify(ulong ticket, double sl, double tp) {
        MqlTradeRequest r;
        r.action = TRADE_ACTION_SLTP;
        r.position = ticket, r.sl = sl, r.tp = tp;
        return send(r);
    }
    bool OrderOpen(const string &symbol, ENUM_ORDER_TYPE type, double volume, double limit_price, double price,
                   double sl, double tp, ENUM_ORDER_TYPE_TIME type_time = ORDER_TIME_GTC, datetime expiration = 0,
                   const string &comment = string()) {
        MqlTradeRequest r;
        r.action = TRADE_ACTION_PENDING;
        r.symbol = symbol, r.type = type, r.volume = volume, r.stoplimit = limit_price, r.price = price;
        r.sl = sl, r.tp = tp, r.type_time = type_time, r.expiration = expiration, r.comment = comment;
        return send(r);
    }
    bool BuyLimit(double volume, double price, const string &symbol = string(), double sl = 0.0, double tp = 0.0,
                  ENUM_ORDER_TYPE_TIME type_time = ORDER_TIME_GTC, datetime expiration = 0,
                  const string &comment = string()) {
        return OrderOpen(symbol, ORDER_TYPE_BUY_LIMIT, volume, 0.0, price, sl, tp, type_time, expiration, comment);
    }
    bool SellLimit(double volume, double price, const string &symbol = string(), double sl = 0.0, double tp = 0.0,
                   ENUM_ORDER_TYPE_TIME type_time = ORDER_TIME_GTC, datetime expiration = 0,
                   const string &comment = string()) {
        return OrderOpen(symbol, ORDER_TYPE_SELL_LIMIT, volume, 0.0, price, sl, tp, type_time, expiration, comment);
    }
    bool BuyStop(double volume, double price, const string &symbol = string(), double sl = 0.0, double tp = 0.0,
                 ENUM_ORDER_TYPE_TIME type_time = ORDER_TIME_GTC, datetime expiration = 0,
                 const string &comment = string()) {
        return OrderOpen(symbol, ORDER_TYPE_BUY_STOP, volume, 0.0, price, sl, tp, type_time, expiration, comment);
    }
    bool SellStop(double volume, double price, const string &symbol = string(), double sl = 0.0, double tp = 0.0,
                  ENUM_ORDER_TYPE_TIME type_time = ORDER_TIME_GTC, datetime expiration = 0,
                  const string &comment = string()) {
        return OrderOpen(symbol, ORDER_TYPE_SELL_STOP, volume, 0.0, price, sl, tp, type_time, expiration, comment);
    }
    bool OrderDelete(ulong ticket) {
        MqlTradeRequest r;
        r.action = TRADE_ACTION_REMOVE;
        r.order = ticket;
        return send(r);
    }
    uint ResultRetcode() const { return m_result.retcode; }
    string ResultRetcodeDescription() const {
        switch (m_result.retcode) {
            case TRADE_RETCODE_DONE: return string(u"done");
            case TRADE_RETCODE_REQUOTE: return string(u"requote");
            case TRADE_RETCODE_REJECT: return string(u"rejected");
            case TRADE_RETCODE_INVALID: return string(u"invalid request");
            case TRADE_RETCODE_INVALID_VOLUME: return string(u"invalid volume");
            case TRADE_RETCODE_TRADE_DISABLED: return string(u"trade disabled");
            case TRADE_RETCODE_INVALID_PRICE: return string(u"invalid price");
            case TRADE_RETCODE_INVALID_EXPIRATION: return string(u"invalid expiration");
            case TRADE_RETCODE_INVALID_ORDER: return string(u"invalid order");
            case TRADE_RETCODE_POSITION_CLOSED: return string(u"position closed");
            default: return string(u"retcode ") + IntegerToString(long(m_result.retcode));
        }
    }
    ulong ResultDeal() const { return m_result.deal; }
    ulong ResultOrder() const { return m_result.order; }
    double ResultPrice() const { return m_result.price; }
    double ResultVolume() const { return m_result.volume; }
    string ResultComment() const { return m_result.comment; }
};

}  // namespace mql
