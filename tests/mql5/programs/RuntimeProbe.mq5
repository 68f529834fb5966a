//+------------------------------------------------------------------+
//| RuntimeProbe.mq5 - prints what the harness runtime's built-ins   |
//| do, one "name=value" line each, for tests/mql5/test_harness.py.  |
//+------------------------------------------------------------------+
input int    Port = 0;
input bool   OutOfRange = false;

string Hex(const uchar &data[], const int count)
  {
   string s = "";
   for(int i = 0; i < count; i++)
      s += StringFormat("%02x", data[i]);
   return s;
  }

void OnStart()
  {
   uchar bytes[];
   uchar nokey[];
   uchar out[];
   int n = StringToCharArray("é€", bytes, 0, -1, CP_UTF8);
   Print("utf8_count=", n, " hex=", Hex(bytes, n));
   ArrayResize(bytes, 10);
   n = StringToCharArray("ab", bytes, 0, -1, CP_UTF8);
   Print("no_shrink=", ArraySize(bytes), " n=", n);
   ArrayResize(bytes, 3);
   bytes[0] = 'a';
   bytes[1] = 'b';
   bytes[2] = 'c';
   n = CryptEncode(CRYPT_HASH_SHA1, bytes, nokey, out);
   Print("sha1=", Hex(out, n));
   n = CryptEncode(CRYPT_BASE64, bytes, nokey, out);
   Print("base64=", CharArrayToString(out, 0, n));
   Print("strlen_utf16=", StringLen("😀"));
   int r1 = MathRand();
   int r2 = MathRand();
   Print("rand=", r1, ",", r2);
   int h = FileOpen("probe.bin", FILE_WRITE | FILE_BIN);
   FileWriteArray(h, bytes);
   FileClose(h);
   h = FileOpen("probe.bin", FILE_READ | FILE_WRITE | FILE_BIN);
   Print("rw_keeps=", (long)FileSize(h));
   FileClose(h);
   h = FileOpen("probe.bin", FILE_WRITE | FILE_BIN);
   Print("write_truncates=", (long)FileSize(h));
   FileClose(h);
   if(Port > 0)
     {
      int s = SocketCreate();
      bool ok = SocketConnect(s, "127.0.0.1", Port, 3000);
      Print("connected=", ok ? "true" : "false");
      Print("readable_empty=", SocketIsReadable(s));
      uchar hello[];
      ArrayResize(hello, 5);
      StringToCharArray("hello", hello, 0, 5, CP_UTF8);
      SocketSend(s, hello, 5);
      uint ready = 0;
      for(int i = 0; i < 500 && ready < 5; i++)
        {
         Sleep(10);
         ready = SocketIsReadable(s);
        }
      Print("readable_data=", ready);
      n = SocketRead(s, out, 5, 1000);
      Print("read=", n, " ", CharArrayToString(out, 0, n));
      ResetLastError();
      n = SocketRead(s, out, 1, 50);
      int read_err = GetLastError();
      bool still = SocketIsConnected(s);
      Print("timeout=", n, " error=", read_err, " still_connected=", still ? "true" : "false");
      SocketClose(s);
      bool again = SocketClose(s);
      int err = GetLastError();
      Print("closed_twice=", again ? "true" : "false", " error=", err);
     }
   if(OutOfRange)
     {
      int small[];
      ArrayResize(small, 2);
      Print("value=", small[2]);
     }
  }
