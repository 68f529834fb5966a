// mql5rt_net.hpp - Socket* built-ins on POSIX sockets and OpenSSL (part of mql5rt.hpp).
#pragma once

namespace mql {

struct Sock {
    bool used = false;
    int fd = -1;
    SSL *ssl = nullptr;
    bool broken = false;
    uint send_ms = 0;  // 0: no timeout (the terminal's default)
    uint recv_ms = 0;
    std::string host;
};

const int SOCKET_MAX = 128;

inline Sock *sock_table() {
    static Sock t[SOCKET_MAX + 1];
    return t;
}
inline Sock *sock_get(int h) {
    if (h < 1 || h > SOCKET_MAX || !sock_table()[h].used) {
        set_err(ERR_NETSOCKET_INVALIDHANDLE);
        return nullptr;
    }
    return &sock_table()[h];
}
// Env MQL_QUIRK_READABLE_EMPTY=1: SocketIsReadable reports 1 byte when nothing is buffered.
inline bool quirk_readable_empty() {
    static int q = -1;
    if (q < 0) q = env_flag("MQL_QUIRK_READABLE_EMPTY") ? 1 : 0;
    return q == 1;
}

inline int SocketCreate(uint flags = 0) {
    (void)flags;
    for (int h = 1; h <= SOCKET_MAX; ++h) {
        if (!sock_table()[h].used) {
            sock_table()[h] = Sock();
            sock_table()[h].used = true;
            return h;
        }
    }
    set_err(ERR_NETSOCKET_TOO_MANY_OPENED);
    return INVALID_HANDLE;
}

inline long ms_left(std::chrono::steady_clock::time_point deadline) {
    return long(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count());
}

// Waits for fd readiness. timeout_ms < 0 waits forever. Returns >0 ready, 0 timeout, -1 error.
inline int wait_fd(int fd, short events, long timeout_ms) {
    for (;;) {
        pollfd p{fd, events, 0};
        int r = ::poll(&p, 1, timeout_ms < 0 ? -1 : int(std::min<long>(timeout_ms, INT_MAX)));
        if (r < 0 && errno == EINTR) continue;
        if (r > 0 && (p.revents & (POLLERR | POLLNVAL)) && !(p.revents & events)) return -1;
        return r;
    }
}

inline bool SocketTlsHandshake(int h, const string &host);

// Models the terminal's "Allow WebRequest for listed URL" list: env MQL_ALLOWED_HOSTS (comma
// separated host names); when the variable is unset every host is allowed.
inline bool host_allowed(const std::string &host) {
    const char *v = std::getenv("MQL_ALLOWED_HOSTS");
    if (!v) return true;
    std::string list = v;
    size_t start = 0;
    while (start <= list.size()) {
        size_t p = list.find(',', start);
        std::string item = list.substr(start, p == std::string::npos ? std::string::npos : p - start);
        if (item == host) return true;
        if (p == std::string::npos) break;
        start = p + 1;
    }
    return false;
}

inline bool SocketConnect(int h, const string &server, uint port, uint timeout_ms) {
    Sock *s = sock_get(h);
    if (!s) return false;
    if (s->fd >= 0) {
        set_err(ERR_NETSOCKET_CANNOT_CONNECT);
        return false;
    }
    std::string host = to_std(server);
    if (!host_allowed(host)) {
        set_err(ERR_NETSOCKET_CANNOT_CONNECT);
        return false;
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo *res = nullptr;
    std::string portstr = std::to_string(port);
    if (getaddrinfo(host.c_str(), portstr.c_str(), &hints, &res) != 0 || !res) {
        set_err(ERR_NETSOCKET_CANNOT_CONNECT);
        return false;
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms ? timeout_ms : 120000);
    int fd = -1;
    for (addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) continue;
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
        int r = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (r == 0) break;
        if (errno == EINPROGRESS && wait_fd(fd, POLLOUT, std::max<long>(0, ms_left(deadline))) > 0) {
            int err = 0;
            socklen_t len = sizeof err;
            ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err == 0) break;
        }
        ::close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        set_err(ERR_NETSOCKET_CANNOT_CONNECT);
        return false;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->fd = fd;
    s->host = host;
    s->broken = false;
    if (port == 443) return SocketTlsHandshake(h, server);  // the terminal starts TLS by itself on 443
    return true;
}

inline bool SocketClose(int h) {
    Sock *s = sock_get(h);
    if (!s) return false;
    if (s->ssl) {
        SSL_shutdown(s->ssl);  // best effort close_notify on the non-blocking socket
        SSL_free(s->ssl);
    }
    if (s->fd >= 0) ::close(s->fd);
    *s = Sock();
    return true;
}

inline bool SocketTimeouts(int h, uint send_ms, uint recv_ms) {
    Sock *s = sock_get(h);
    if (!s) return false;
    s->send_ms = send_ms;
    s->recv_ms = recv_ms;
    return true;
}

// False once the peer has closed (EOF with nothing left to read) or the connection failed.
inline bool SocketIsConnected(int h) {
    Sock *s = sock_get(h);
    if (!s || s->fd < 0 || s->broken) return false;
    pollfd p{s->fd, POLLIN, 0};
    int r = ::poll(&p, 1, 0);
    if (r > 0) {
        if (p.revents & (POLLERR | POLLNVAL)) return false;
        char c;
        ssize_t n = ::recv(s->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0) return false;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
    }
    return true;
}

// Bytes readable on the TCP socket (raw TLS bytes in TLS mode), 0 on error.
inline uint SocketIsReadable(int h) {
    Sock *s = sock_get(h);
    if (!s || s->fd < 0) return 0;
    int n = 0;
    if (::ioctl(s->fd, FIONREAD, &n) < 0) return 0;
    if (n == 0 && quirk_readable_empty() && !s->broken) return 1;
    return uint(n);
}

inline bool SocketIsWritable(int h) {
    Sock *s = sock_get(h);
    if (!s || s->fd < 0 || s->broken) return false;
    return wait_fd(s->fd, POLLOUT, 0) > 0;
}

// Reads until maxlen bytes arrived. On timeout, EOF or error it returns -1 with 5273, even when some
// bytes were already stored in buf (the documented "buffer may hold valid data" behaviour).
inline int SocketRead(int h, Array<uchar> &buf, uint maxlen, uint timeout_ms) {
    Sock *s = sock_get(h);
    if (!s) return -1;
    if (s->fd < 0 || s->ssl || s->broken) {
        set_err(ERR_NETSOCKET_IO_ERROR);
        return -1;
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms ? timeout_ms : 120000);
    size_t got = 0;
    std::vector<unsigned char> tmp(maxlen);
    while (got < maxlen) {
        ssize_t n = ::recv(s->fd, tmp.data() + got, maxlen - got, MSG_DONTWAIT);
        if (n > 0) {
            got += size_t(n);
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            s->broken = true;
            break;
        }
        long left = ms_left(deadline);
        if (left <= 0 || wait_fd(s->fd, POLLIN, left) <= 0) break;
    }
    if (buf.v.size() < got) buf.v.resize(got);
    std::memcpy(buf.v.data(), tmp.data(), got);
    if (got < maxlen) {
        set_err(ERR_NETSOCKET_IO_ERROR);
        return -1;
    }
    return int(got);
}

inline int send_all_plain(Sock *s, const unsigned char *p, size_t len) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(s->send_ms);
    size_t sent = 0;
    while (sent < len) {
        ssize_t n = ::send(s->fd, p + sent, len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            sent += size_t(n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            long left = s->send_ms ? ms_left(deadline) : -1;
            if (s->send_ms && left <= 0) break;
            if (wait_fd(s->fd, POLLOUT, left) < 0) break;
            continue;
        }
        s->broken = true;
        break;
    }
    if (sent < len) {
        set_err(ERR_NETSOCKET_IO_ERROR);
        return -1;
    }
    return int(sent);
}

inline int SocketSend(int h, const Array<uchar> &buf, uint len) {
    Sock *s = sock_get(h);
    if (!s) return -1;
    if (s->fd < 0 || s->ssl || s->broken || len > buf.v.size()) {
        set_err(s->fd < 0 || s->ssl || s->broken ? ERR_NETSOCKET_IO_ERROR : ERR_INVALID_PARAMETER);
        return -1;
    }
    return send_all_plain(s, buf.v.data(), len);
}

// ---------------------------------------------------------------- TLS
// Verification uses the CA file in env MQL_TLS_CA_FILE, else the system store, and checks the host name.
inline SSL_CTX *tls_ctx() {
    static SSL_CTX *ctx = nullptr;
    if (!ctx) {
        ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
        std::string ca = env_str("MQL_TLS_CA_FILE");
        if (!ca.empty())
            SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr);
        else
            SSL_CTX_set_default_verify_paths(ctx);
    }
    return ctx;
}

inline bool SocketTlsHandshake(int h, const string &host) {
    Sock *s = sock_get(h);
    if (!s) return false;
    if (s->fd < 0 || s->ssl) {
        set_err(ERR_NETSOCKET_HANDSHAKE_FAILED);
        return false;
    }
    std::string name = to_std(host);
    SSL *ssl = SSL_new(tls_ctx());
    SSL_set_fd(ssl, s->fd);
    SSL_set_tlsext_host_name(ssl, name.c_str());
    SSL_set1_host(ssl, name.c_str());
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(s->recv_ms ? s->recv_ms : 30000);
    for (;;) {
        int r = SSL_connect(ssl);
        if (r == 1) break;
        int e = SSL_get_error(ssl, r);
        long left = ms_left(deadline);
        if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && left > 0 &&
            wait_fd(s->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, left) > 0)
            continue;
        unsigned long ossl = ERR_get_error();
        char msg[256] = "";
        if (ossl) ERR_error_string_n(ossl, msg, sizeof msg);
        std::fprintf(stderr, "mql5rt: TLS handshake with %s failed: %s\n", name.c_str(), msg);
        ERR_clear_error();
        SSL_free(ssl);
        set_err(ERR_NETSOCKET_HANDSHAKE_FAILED);
        return false;
    }
    s->ssl = ssl;
    return true;
}

// Non-blocking: returns the decrypted bytes available now (up to maxlen), 0 when none, -1 on error.
inline int SocketTlsReadAvailable(int h, Array<uchar> &buf, const uint maxlen) {
    Sock *s = sock_get(h);
    if (!s) return -1;
    if (!s->ssl || s->broken) {
        set_err(ERR_NETSOCKET_IO_ERROR);
        return -1;
    }
    std::vector<unsigned char> tmp(maxlen);
    size_t got = 0;
    while (got < maxlen) {
        int r = SSL_read(s->ssl, tmp.data() + got, int(maxlen - got));
        if (r > 0) {
            got += size_t(r);
            continue;
        }
        int e = SSL_get_error(s->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
        ERR_clear_error();
        s->broken = true;
        break;
    }
    if (buf.v.size() < got) buf.v.resize(got);
    std::memcpy(buf.v.data(), tmp.data(), got);
    if (got == 0 && s->broken) {
        set_err(ERR_NETSOCKET_IO_ERROR);
        return -1;
    }
    return int(got);
}

// Blocks until maxlen bytes or the receive timeout (0: forever).
inline int SocketTlsRead(int h, Array<uchar> &buf, uint maxlen) {
    Sock *s = sock_get(h);
    if (!s) return -1;
    if (!s->ssl || s->broken) {
        set_err(ERR_NETSOCKET_IO_ERROR);
        return -1;
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(s->recv_ms);
    std::vector<unsigned char> tmp(maxlen);
    size_t got = 0;
    while (got < maxlen) {
        int r = SSL_read(s->ssl, tmp.data() + got, int(maxlen - got));
        if (r > 0) {
            got += size_t(r);
            continue;
        }
        int e = SSL_get_error(s->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            long left = s->recv_ms ? ms_left(deadline) : -1;
            if (s->recv_ms && left <= 0) break;
            if (wait_fd(s->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, left) < 0) break;
            continue;
        }
        ERR_clear_error();
        s->broken = true;
        break;
    }
    if (buf.v.size() < got) buf.v.resize(got);
    std::memcpy(buf.v.data(), tmp.data(), got);
    if (got < maxlen) {
        set_err(ERR_NETSOCKET_IO_ERROR);
        return -1;
    }
    return int(got);
}

inline int SocketTlsSend(int h, const Array<uchar> &buf, uint len) {
    Sock *s = sock_get(h);
    if (!s) return -1;
    if (!s->ssl || s->broken || len > buf.v.size()) {
        set_err(ERR_NETSOCKET_IO_ERROR);
        return -1;
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(s->send_ms);
    size_t sent = 0;
    while (sent < len) {
        int r = SSL_write(s->ssl, buf.v.data() + sent, int(len - sent));
        if (r > 0) {
            sent += size_t(r);
            continue;
        }
        int e = SSL_get_error(s->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            long left = s->send_ms ? ms_left(deadline) : -1;
            if (s->send_ms && left <= 0) break;
            if (wait_fd(s->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, left) < 0) break;
            continue;
        }
        ERR_clear_error();
        s->broken = true;
        break;
    }
    if (sent < len) {
        set_err(ERR_NETSOCKET_IO_ERROR);
        return -1;
    }
    return int(sent);
}

inline bool SocketTlsCertificate(int h, string &subject, string &issuer, string &serial, string &thumbprint,
                                 datetime &expiration) {
    Sock *s = sock_get(h);
    if (!s) return false;
    X509 *cert = s->ssl ? SSL_get1_peer_certificate(s->ssl) : nullptr;
    if (!cert) {
        set_err(ERR_NETSOCKET_NO_CERTIFICATE);
        return false;
    }
    char buf[512];
    X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof buf);
    subject = from_std(buf);
    X509_NAME_oneline(X509_get_issuer_name(cert), buf, sizeof buf);
    issuer = from_std(buf);
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(cert), nullptr);
    char *hex = BN_bn2hex(bn);
    serial = from_std(hex);
    OPENSSL_free(hex);
    BN_free(bn);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    X509_digest(cert, EVP_sha1(), md, &mdlen);
    std::string tp;
    for (unsigned i = 0; i < mdlen; ++i) {
        std::snprintf(buf, sizeof buf, "%02X", md[i]);
        tp += buf;
    }
    thumbprint = from_std(tp);
    struct tm tmv {};
    ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tmv);
    expiration = datetime(timegm(&tmv));
    X509_free(cert);
    return true;
}

}  // namespace mql
