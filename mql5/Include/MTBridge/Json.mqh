//+------------------------------------------------------------------+
//| Json.mqh - strict JSON (RFC 8259) reader and writer for mtbridge |
//|                                                                  |
//| Reader: parses UTF-8 bytes; refuses anything RFC 8259 does not   |
//| allow (comments, trailing commas, leading zeros, NaN, bad        |
//| escapes, lone surrogates, invalid UTF-8, raw control characters) |
//| plus duplicate keys and U+0000 (MQL5 strings cannot hold it).    |
//| Writer: builds compact JSON text; numbers are formatted          |
//| explicitly (integers exactly, doubles with a given precision).   |
//+------------------------------------------------------------------+
#ifndef MTBRIDGE_JSON_MQH
#define MTBRIDGE_JSON_MQH

#define JSON_NULL    0
#define JSON_BOOL    1
#define JSON_NUMBER  2
#define JSON_STRING  3
#define JSON_ARRAY   4
#define JSON_OBJECT  5

#define JSON_MAX_DEPTH 32

//+------------------------------------------------------------------+
//| A parsed value. Arrays and objects own their children.           |
//+------------------------------------------------------------------+
class CJsonValue
  {
private:
   int               m_type;
   bool              m_bool;
   double            m_number;
   long              m_integer;
   bool              m_is_integer;
   string            m_string;
   string            m_keys[];
   CJsonValue       *m_items[];
   int               m_count;
public:
                     CJsonValue() { m_type = JSON_NULL; m_bool = false; m_number = 0; m_integer = 0; m_is_integer = false; m_count = 0; }
   virtual          ~CJsonValue()
     {
      for(int i = 0; i < m_count; i++)
         delete m_items[i];
      m_count = 0;
     }
   //--- building (used by the parser)
   void              SetNull() { m_type = JSON_NULL; }
   void              SetBool(const bool v) { m_type = JSON_BOOL; m_bool = v; }
   void              SetNumber(const double v, const bool is_integer, const long iv)
     {
      m_type = JSON_NUMBER;
      m_number = v;
      m_is_integer = is_integer;
      m_integer = iv;
     }
   void              SetString(const string v) { m_type = JSON_STRING; m_string = v; }
   void              SetArray() { m_type = JSON_ARRAY; }
   void              SetObject() { m_type = JSON_OBJECT; }
   void              Append(const string key, CJsonValue *child)
     {
      if(ArraySize(m_items) <= m_count)
        {
         ArrayResize(m_items, m_count + 1, 16);
         ArrayResize(m_keys, m_count + 1, 16);
        }
      m_items[m_count] = child;
      m_keys[m_count] = key;
      m_count++;
     }
   //--- reading
   int               Type() const { return m_type; }
   bool              IsNull() const { return m_type == JSON_NULL; }
   bool              IsBool() const { return m_type == JSON_BOOL; }
   bool              IsNumber() const { return m_type == JSON_NUMBER; }
   bool              IsInteger() const { return m_type == JSON_NUMBER && m_is_integer; }
   bool              IsString() const { return m_type == JSON_STRING; }
   bool              IsArray() const { return m_type == JSON_ARRAY; }
   bool              IsObject() const { return m_type == JSON_OBJECT; }
   bool              Bool() const { return m_bool; }
   double            Number() const { return m_number; }
   long              Integer() const { return m_integer; }
   string            Str() const { return m_string; }
   int               Size() const { return m_count; }
   CJsonValue       *At(const int i) { return (i >= 0 && i < m_count) ? m_items[i] : NULL; }
   string            KeyAt(const int i) const { return (i >= 0 && i < m_count) ? m_keys[i] : ""; }
   bool              HasKey(const string key) const
     {
      for(int i = 0; i < m_count; i++)
         if(m_keys[i] == key)
            return true;
      return false;
     }
   //--- NULL when absent or when this is not an object
   CJsonValue       *Get(const string key)
     {
      if(m_type != JSON_OBJECT)
         return NULL;
      for(int i = 0; i < m_count; i++)
         if(m_keys[i] == key)
            return m_items[i];
      return NULL;
     }
   //--- typed lookups with a default for absent or mistyped members
   string            GetString(const string key, const string fallback)
     {
      CJsonValue *v = Get(key);
      return (v != NULL && v.IsString()) ? v.Str() : fallback;
     }
   double            GetNumber(const string key, const double fallback)
     {
      CJsonValue *v = Get(key);
      return (v != NULL && v.IsNumber()) ? v.Number() : fallback;
     }
   long              GetInteger(const string key, const long fallback)
     {
      CJsonValue *v = Get(key);
      return (v != NULL && v.IsInteger()) ? v.Integer() : fallback;
     }
   bool              GetBool(const string key, const bool fallback)
     {
      CJsonValue *v = Get(key);
      return (v != NULL && v.IsBool()) ? v.Bool() : fallback;
     }
  };

//+------------------------------------------------------------------+
//| Reader.                                                          |
//+------------------------------------------------------------------+
class CJsonParser
  {
private:
   uchar             m_data[];
   int               m_len;
   int               m_pos;
   string            m_error;
   ushort            m_units[];
   int               m_unit_count;

   bool              Error(const string what)
     {
      if(m_error == "")
         m_error = what + " at byte " + IntegerToString(m_pos);
      return false;
     }
   void              SkipSpace()
     {
      while(m_pos < m_len)
        {
         int c = m_data[m_pos];
         if(c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
         m_pos++;
        }
     }
   bool              Literal(const string word)
     {
      int n = StringLen(word);
      if(m_pos + n > m_len)
         return Error("unexpected end");
      for(int i = 0; i < n; i++)
         if(m_data[m_pos + i] != StringGetCharacter(word, i))
            return Error("invalid literal");
      m_pos += n;
      return true;
     }
   void              PushUnit(const int u)
     {
      if(ArraySize(m_units) <= m_unit_count)
         ArrayResize(m_units, m_unit_count + 1, 256);
      m_units[m_unit_count] = (ushort)u;
      m_unit_count++;
     }
   int               Hex4()
     {
      if(m_pos + 4 > m_len)
         return -1;
      int v = 0;
      for(int i = 0; i < 4; i++)
        {
         int c = m_data[m_pos + i];
         int d = -1;
         if(c >= '0' && c <= '9')
            d = c - '0';
         else
            if(c >= 'a' && c <= 'f')
               d = c - 'a' + 10;
            else
               if(c >= 'A' && c <= 'F')
                  d = c - 'A' + 10;
         if(d < 0)
            return -1;
         v = v * 16 + d;
        }
      m_pos += 4;
      return v;
     }
   //--- one UTF-8 sequence to UTF-16 units; false on malformed input
   bool              Utf8Char()
     {
      int b = m_data[m_pos];
      int need = 0;
      int cp = 0;
      int lo = 0x80;
      int hi = 0xBF;
      if(b >= 0xC2 && b <= 0xDF)
        { need = 1; cp = b & 0x1F; }
      else
         if(b >= 0xE0 && b <= 0xEF)
           {
            need = 2;
            cp = b & 0x0F;
            if(b == 0xE0)
               lo = 0xA0;
            if(b == 0xED)
               hi = 0x9F;
           }
         else
            if(b >= 0xF0 && b <= 0xF4)
              {
               need = 3;
               cp = b & 0x07;
               if(b == 0xF0)
                  lo = 0x90;
               if(b == 0xF4)
                  hi = 0x8F;
              }
            else
               return Error("invalid UTF-8");
      if(m_pos + need >= m_len)
         return Error("truncated UTF-8");
      for(int i = 1; i <= need; i++)
        {
         int c = m_data[m_pos + i];
         if(c < lo || c > hi)
            return Error("invalid UTF-8");
         lo = 0x80;
         hi = 0xBF;
         cp = (cp << 6) | (c & 0x3F);
        }
      m_pos += need + 1;
      if(cp >= 0x10000)
        {
         cp -= 0x10000;
         PushUnit(0xD800 + (cp >> 10));
         PushUnit(0xDC00 + (cp & 0x3FF));
        }
      else
         PushUnit(cp);
      return true;
     }
   bool              ParseString(string &out)
     {
      m_pos++;  // opening quote
      m_unit_count = 0;
      while(true)
        {
         if(m_pos >= m_len)
            return Error("unterminated string");
         int c = m_data[m_pos];
         if(c == '"')
           {
            m_pos++;
            break;
           }
         if(c < 0x20)
            return Error("control character in string");
         if(c == '\\')
           {
            m_pos++;
            if(m_pos >= m_len)
               return Error("unterminated escape");
            int e = m_data[m_pos];
            m_pos++;
            if(e == '"' || e == '\\' || e == '/')
               PushUnit(e);
            else
               if(e == 'b')
                  PushUnit(8);
               else
                  if(e == 'f')
                     PushUnit(12);
                  else
                     if(e == 'n')
                        PushUnit(10);
                     else
                        if(e == 'r')
                           PushUnit(13);
                        else
                           if(e == 't')
                              PushUnit(9);
                           else
                              if(e == 'u')
                                {
                                 int u = Hex4();
                                 if(u < 0)
                                    return Error("invalid \\u escape");
                                 if(u == 0)
                                    return Error("U+0000 is not supported");
                                 if(u >= 0xDC00 && u <= 0xDFFF)
                                    return Error("lone low surrogate");
                                 if(u >= 0xD800 && u <= 0xDBFF)
                                   {
                                    if(m_pos + 6 > m_len || m_data[m_pos] != '\\' || m_data[m_pos + 1] != 'u')
                                       return Error("lone high surrogate");
                                    m_pos += 2;
                                    int low = Hex4();
                                    if(low < 0xDC00 || low > 0xDFFF)
                                       return Error("lone high surrogate");
                                    PushUnit(u);
                                    PushUnit(low);
                                   }
                                 else
                                    PushUnit(u);
                                }
                              else
                                 return Error("invalid escape");
            continue;
           }
         if(c < 0x80)
           {
            PushUnit(c);
            m_pos++;
            continue;
           }
         if(!Utf8Char())
            return false;
        }
      out = (m_unit_count > 0) ? ShortArrayToString(m_units, 0, m_unit_count) : "";
      return true;
     }
   bool              ParseNumber(CJsonValue *v)
     {
      int start = m_pos;
      bool integer = true;
      if(m_data[m_pos] == '-')
         m_pos++;
      if(m_pos >= m_len)
         return Error("invalid number");
      if(m_data[m_pos] == '0')
         m_pos++;
      else
         if(m_data[m_pos] >= '1' && m_data[m_pos] <= '9')
           {
            while(m_pos < m_len && m_data[m_pos] >= '0' && m_data[m_pos] <= '9')
               m_pos++;
           }
         else
            return Error("invalid number");
      if(m_pos < m_len && m_data[m_pos] == '.')
        {
         integer = false;
         m_pos++;
         int digits = 0;
         while(m_pos < m_len && m_data[m_pos] >= '0' && m_data[m_pos] <= '9')
           { m_pos++; digits++; }
         if(digits == 0)
            return Error("invalid number");
        }
      if(m_pos < m_len && (m_data[m_pos] == 'e' || m_data[m_pos] == 'E'))
        {
         integer = false;
         m_pos++;
         if(m_pos < m_len && (m_data[m_pos] == '+' || m_data[m_pos] == '-'))
            m_pos++;
         int digits = 0;
         while(m_pos < m_len && m_data[m_pos] >= '0' && m_data[m_pos] <= '9')
           { m_pos++; digits++; }
         if(digits == 0)
            return Error("invalid number");
        }
      string text = CharArrayToString(m_data, start, m_pos - start, CP_UTF8);
      double d = StringToDouble(text);
      if(!MathIsValidNumber(d))
         return Error("number out of range");
      long iv = 0;
      if(integer)
        {
         //--- exact 64-bit integers only: longer ones are refused rather than rounded
         int ndigits = m_pos - start - ((m_data[start] == '-') ? 1 : 0);
         if(ndigits > 18)
            return Error("integer out of range");
         iv = StringToInteger(text);
        }
      v.SetNumber(d, integer, iv);
      return true;
     }
   CJsonValue       *ParseValue(const int depth)
     {
      if(depth > JSON_MAX_DEPTH)
        {
         Error("nesting too deep");
         return NULL;
        }
      SkipSpace();
      if(m_pos >= m_len)
        {
         Error("unexpected end");
         return NULL;
        }
      CJsonValue *v = new CJsonValue();
      int c = m_data[m_pos];
      bool ok = true;
      if(c == '{')
        {
         v.SetObject();
         m_pos++;
         SkipSpace();
         if(m_pos < m_len && m_data[m_pos] == '}')
            m_pos++;
         else
            while(ok)
              {
               SkipSpace();
               if(m_pos >= m_len || m_data[m_pos] != '"')
                 { ok = Error("expected a key"); break; }
               string key;
               if(!ParseString(key))
                 { ok = false; break; }
               if(v.HasKey(key))
                 { ok = Error("duplicate key"); break; }
               SkipSpace();
               if(m_pos >= m_len || m_data[m_pos] != ':')
                 { ok = Error("expected ':'"); break; }
               m_pos++;
               CJsonValue *child = ParseValue(depth + 1);
               if(child == NULL)
                 { ok = false; break; }
               v.Append(key, child);
               SkipSpace();
               if(m_pos < m_len && m_data[m_pos] == ',')
                 { m_pos++; continue; }
               if(m_pos < m_len && m_data[m_pos] == '}')
                 { m_pos++; break; }
               ok = Error("expected ',' or '}'");
              }
        }
      else
         if(c == '[')
           {
            v.SetArray();
            m_pos++;
            SkipSpace();
            if(m_pos < m_len && m_data[m_pos] == ']')
               m_pos++;
            else
               while(ok)
                 {
                  CJsonValue *child = ParseValue(depth + 1);
                  if(child == NULL)
                    { ok = false; break; }
                  v.Append("", child);
                  SkipSpace();
                  if(m_pos < m_len && m_data[m_pos] == ',')
                    { m_pos++; continue; }
                  if(m_pos < m_len && m_data[m_pos] == ']')
                    { m_pos++; break; }
                  ok = Error("expected ',' or ']'");
                 }
           }
         else
            if(c == '"')
              {
               string s;
               ok = ParseString(s);
               if(ok)
                  v.SetString(s);
              }
            else
               if(c == 't')
                 {
                  ok = Literal("true");
                  v.SetBool(true);
                 }
               else
                  if(c == 'f')
                    {
                     ok = Literal("false");
                     v.SetBool(false);
                    }
                  else
                     if(c == 'n')
                       {
                        ok = Literal("null");
                        v.SetNull();
                       }
                     else
                        if(c == '-' || (c >= '0' && c <= '9'))
                           ok = ParseNumber(v);
                        else
                           ok = Error("unexpected character");
      if(!ok)
        {
         delete v;
         return NULL;
        }
      return v;
     }
public:
                     CJsonParser() { m_len = 0; m_pos = 0; m_unit_count = 0; }
   //--- parses len bytes; returns the root (caller deletes it) or NULL (see ErrorText)
   CJsonValue       *Parse(const uchar &data[], const int len)
     {
      m_error = "";
      m_pos = 0;
      m_len = len;
      if(ArraySize(m_data) < len)
         ArrayResize(m_data, len);
      if(len > 0)
         ArrayCopy(m_data, data, 0, 0, len);
      CJsonValue *root = ParseValue(0);
      if(root == NULL)
         return NULL;
      SkipSpace();
      if(m_pos != m_len)
        {
         Error("trailing characters");
         delete root;
         return NULL;
        }
      return root;
     }
   CJsonValue       *ParseText(const string text)
     {
      uchar bytes[];
      int n = StringToCharArray(text, bytes, 0, -1, CP_UTF8);
      if(n > 0 && bytes[n - 1] == 0)
         n--;
      return Parse(bytes, n);
     }
   string            ErrorText() const { return m_error; }
  };

//+------------------------------------------------------------------+
//| Number formatting: shortest fixed notation with at most `digits` |
//| decimals, no exponent, no "-0". Non-finite values are refused.   |
//+------------------------------------------------------------------+
string JsonFormatNumber(const double value, const int digits)
  {
   string s = DoubleToString(value, digits);
   if(StringFind(s, ".") >= 0)
     {
      int n = StringLen(s);
      while(n > 0 && StringGetCharacter(s, n - 1) == '0')
         n--;
      if(n > 0 && StringGetCharacter(s, n - 1) == '.')
         n--;
      s = StringSubstr(s, 0, n);
     }
   if(s == "-0" || s == "")
      s = "0";
   return s;
  }

//+------------------------------------------------------------------+
//| Writer: call in document order; Text() gives the JSON.           |
//+------------------------------------------------------------------+
class CJsonWriter
  {
private:
   string            m_out;
   int               m_first[];
   int               m_depth;
   bool              m_after_key;
   bool              m_ok;

   void              Separator()
     {
      if(m_after_key)
        {
         m_after_key = false;
         return;
        }
      if(m_depth > 0)
        {
         if(m_first[m_depth - 1] == 0)
            m_out += ",";
         m_first[m_depth - 1] = 0;
        }
     }
   void              Open(const string bracket)
     {
      Separator();
      m_out += bracket;
      if(ArraySize(m_first) <= m_depth)
         ArrayResize(m_first, m_depth + 1, 8);
      m_first[m_depth] = 1;
      m_depth++;
     }
   void              CloseScope(const string bracket)
     {
      if(m_depth == 0)
        {
         m_ok = false;
         return;
        }
      m_depth--;
      m_out += bracket;
     }
public:
                     CJsonWriter() { Reset(); }
   void              Reset() { m_out = ""; m_depth = 0; m_after_key = false; m_ok = true; }
   void              BeginObject() { Open("{"); }
   void              EndObject() { CloseScope("}"); }
   void              BeginArray() { Open("["); }
   void              EndArray() { CloseScope("]"); }
   void              Key(const string name)
     {
      Separator();
      m_out += JsonQuote(name) + ":";
      m_after_key = true;
     }
   void              Str(const string value) { Separator(); m_out += JsonQuote(value); }
   void              Int(const long value) { Separator(); m_out += IntegerToString(value); }
   void              Num(const double value, const int digits)
     {
      Separator();
      if(!MathIsValidNumber(value))
        {
         m_ok = false;
         m_out += "null";
         return;
        }
      m_out += JsonFormatNumber(value, digits);
     }
   void              Bool(const bool value) { Separator(); m_out += value ? "true" : "false"; }
   void              Null() { Separator(); m_out += "null"; }
   //--- a complete JSON text produced elsewhere (for example a stored event)
   void              Raw(const string json) { Separator(); m_out += json; }
   //--- shorthands for object members
   void              KeyStr(const string k, const string v) { Key(k); Str(v); }
   void              KeyInt(const string k, const long v) { Key(k); Int(v); }
   void              KeyNum(const string k, const double v, const int digits) { Key(k); Num(v, digits); }
   void              KeyBool(const string k, const bool v) { Key(k); Bool(v); }
   //--- false when a value was not finite or scopes were unbalanced
   bool              Ok() const { return m_ok && m_depth == 0; }
   string            Text() const { return m_out; }

   static string     JsonQuote(const string s)
     {
      string out = "\"";
      int n = StringLen(s);
      int run = 0;
      for(int i = 0; i < n; i++)
        {
         ushort c = StringGetCharacter(s, i);
         string esc = "";
         if(c == '"')
            esc = "\\\"";
         else
            if(c == '\\')
               esc = "\\\\";
            else
               if(c == 10)
                  esc = "\\n";
               else
                  if(c == 13)
                     esc = "\\r";
                  else
                     if(c == 9)
                        esc = "\\t";
                     else
                        if(c < 0x20)
                           esc = "\\u" + StringFormat("%04x", c);
                        else
                           if(c >= 0xD800 && c <= 0xDBFF)
                             {
                              ushort next = (i + 1 < n) ? StringGetCharacter(s, i + 1) : 0;
                              if(next < 0xDC00 || next > 0xDFFF)
                                 esc = "\\ufffd";
                             }
                           else
                              if(c >= 0xDC00 && c <= 0xDFFF)
                                {
                                 ushort prev = (i > 0) ? StringGetCharacter(s, i - 1) : 0;
                                 if(prev < 0xD800 || prev > 0xDBFF)
                                    esc = "\\ufffd";
                                }
         if(esc == "")
           {
            run++;
            continue;
           }
         if(run > 0)
            out += StringSubstr(s, i - run, run);
         run = 0;
         out += esc;
        }
      if(run > 0)
         out += StringSubstr(s, n - run, run);
      return out + "\"";
     }
  };

#endif // MTBRIDGE_JSON_MQH
