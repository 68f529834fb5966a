//+------------------------------------------------------------------+
//| JsonProbe.mq5 - test driver for the shipped Json.mqh.            |
//| Reads hex-encoded documents, one per line, from InputFile (in    |
//| MQL5/Files) and writes "OK <re-serialised JSON>" or "ERR <why>"  |
//| per line to OutputFile.                                          |
//+------------------------------------------------------------------+
#property script_show_inputs

#include <MTBridge\Json.mqh>

input string InputFile  = "json_in.txt";
input string OutputFile = "json_out.txt";

//+------------------------------------------------------------------+
int HexDigit(const int c)
  {
   if(c >= '0' && c <= '9')
      return c - '0';
   if(c >= 'a' && c <= 'f')
      return c - 'a' + 10;
   return -1;
  }

//+------------------------------------------------------------------+
void Emit(CJsonValue *v, CJsonWriter &w)
  {
   if(v.IsNull())
      w.Null();
   else
      if(v.IsBool())
         w.Bool(v.Bool());
      else
         if(v.IsInteger())
            w.Int(v.Integer());
         else
            if(v.IsNumber())
               w.Raw(DoubleToString(v.Number(), -16));
            else
               if(v.IsString())
                  w.Str(v.Str());
               else
                  if(v.IsArray())
                    {
                     w.BeginArray();
                     for(int i = 0; i < v.Size(); i++)
                        Emit(v.At(i), w);
                     w.EndArray();
                    }
                  else
                    {
                     w.BeginObject();
                     for(int i = 0; i < v.Size(); i++)
                       {
                        w.Key(v.KeyAt(i));
                        Emit(v.At(i), w);
                       }
                     w.EndObject();
                    }
  }

//+------------------------------------------------------------------+
void OnStart()
  {
   int in = FileOpen(InputFile, FILE_READ | FILE_BIN);
   if(in == INVALID_HANDLE)
     {
      Print("cannot open ", InputFile, " error ", GetLastError());
      return;
     }
   uchar raw[];
   int total = (int)FileReadArray(in, raw);
   FileClose(in);
   int out = FileOpen(OutputFile, FILE_WRITE | FILE_BIN);
   CJsonParser parser;
   uchar doc[];
   uchar line[];
   int start = 0;
   for(int i = 0; i <= total; i++)
     {
      if(i < total && raw[i] != 10)
         continue;
      int n = (i - start) / 2;
      ArrayResize(doc, n);
      for(int k = 0; k < n; k++)
         doc[k] = (uchar)(HexDigit(raw[start + 2 * k]) * 16 + HexDigit(raw[start + 2 * k + 1]));
      if(i > start || i < total)
        {
         string result;
         CJsonValue *root = parser.Parse(doc, n);
         if(root == NULL)
            result = "ERR " + parser.ErrorText();
         else
           {
            CJsonWriter w;
            Emit(root, w);
            result = "OK " + w.Text();
            delete root;
           }
         int len = StringToCharArray(result, line, 0, -1, CP_UTF8);
         line[len - 1] = 10;
         FileWriteArray(out, line, 0, len);
        }
      start = i + 1;
     }
   FileClose(out);
  }
